#![allow(dead_code, unreachable_pub)]
//! Builds the crate's examples for tests that run them (`tests/examples`,
//! the receiver processes of `tests/redis`): once per test run, with
//! `cargo build --examples` into the test's own target directory, profile
//! and features, so that neither rebuilds the other's and a test run alone
//! still gets fresh binaries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The profile directory this test runs from (`<target>/<profile>`, the
/// test binary being `<target>/<profile>/deps/<this test>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps")
        .to_owned()
}

/// Runs `cargo build --quiet` with `args` (what to build, features) into
/// this test's own target directory and profile.
pub fn cargo_build(args: &[&str]) -> Result<(), String> {
    let profile_dir = profile_dir();
    let target_dir = profile_dir.parent().expect("<target>/<profile>");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let output = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--quiet", "--profile", &profile])
        .arg("--target-dir")
        .arg(target_dir)
        .args(args)
        .output()
        .map_err(|e| format!("cargo: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The path of example `name` as built by [`cargo_build`]; panics if it is
/// not there.
pub fn built(name: &str) -> PathBuf {
    let path = profile_dir()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The features this test was built with, for building the examples alike.
fn features() -> String {
    [
        (cfg!(feature = "axum"), "axum"),
        (cfg!(feature = "verify"), "verify"),
        (cfg!(feature = "refetch"), "refetch"),
        (cfg!(feature = "redis"), "redis"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect::<Vec<_>>()
    .join(",")
}

/// The path of example `name`, after building every example once.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built_all = BUILT.get_or_init(|| {
        cargo_build(&[
            "--examples",
            "--no-default-features",
            "--features",
            &features(),
        ])
    });
    if let Err(error) = built_all {
        panic!("building the examples failed:\n{error}");
    }
    built(name)
}
