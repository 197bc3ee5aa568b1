//! Builds the crate's examples for tests that run them (`tests/examples`,
//! the receiver processes of `tests/redis`): once per test run, with
//! `cargo build --examples` into the test's own target directory, profile
//! and features, so that neither rebuilds the other's and a test run alone
//! still gets fresh binaries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The target directory and the profile directory this test runs from
/// (`<target>/<profile>/deps/<this test>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps")
        .to_owned()
}

/// The features this test was built with, for building the examples alike.
fn features() -> Vec<&'static str> {
    let mut features = Vec::new();
    for (on, name) in [
        (cfg!(feature = "axum"), "axum"),
        (cfg!(feature = "verify"), "verify"),
        (cfg!(feature = "refetch"), "refetch"),
        (cfg!(feature = "sim"), "sim"),
        (cfg!(feature = "redis"), "redis"),
    ] {
        if on {
            features.push(name);
        }
    }
    features
}

/// The path of example `name`, after building every example once.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let profile_dir = profile_dir();
    let built = BUILT.get_or_init(|| {
        let target_dir = profile_dir.parent().expect("<target>/<profile>");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev".to_owned(),
            Some(other) => other.to_owned(),
            None => "dev".to_owned(),
        };
        let output = Command::new(env!("CARGO"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--quiet", "--examples", "--profile", &profile])
            .arg("--target-dir")
            .arg(target_dir)
            .args(["--no-default-features", "--features", &features().join(",")])
            .output()
            .map_err(|e| format!("cargo: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    });
    if let Err(error) = built {
        panic!("building the examples failed:\n{error}");
    }
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} was not built", path.display());
    path
}
