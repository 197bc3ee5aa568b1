//! The harness of the memory measures (`dedup_memory`, `fast_ack_memory`):
//! every measurement runs in a fresh child process, this program started
//! again with a mode, so that no allocation of one measurement is reused by
//! the next.

use std::process::Command;

/// With a mode of `modes` as the first argument, runs `measure(mode, n)`
/// in this process (`n`: the second argument, or `default_n`). Otherwise
/// prints `header(n)` (`n`: the first argument, or `default_n`) and runs
/// each mode in a child process, in order; panics if one fails.
pub fn run(
    modes: &[&str],
    default_n: u64,
    header: impl Fn(u64) -> String,
    measure: impl FnOnce(&str, u64),
) {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    match first.as_deref() {
        Some(mode) if modes.contains(&mode) => {
            let n = args
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(default_n);
            measure(mode, n);
        }
        _ => {
            let n: u64 = first.and_then(|n| n.parse().ok()).unwrap_or(default_n);
            let exe = std::env::current_exe().expect("path of this program");
            println!("{}", header(n));
            for mode in modes {
                let status = Command::new(&exe)
                    .args([*mode, &n.to_string()])
                    .status()
                    .expect("run a measurement");
                assert!(status.success(), "{mode} failed");
            }
        }
    }
}

/// This process's resident memory (`VmRSS` in `/proc/self/status`; Linux
/// only), in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kb * 1024
}
