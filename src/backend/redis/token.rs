//! Random owner tokens and consumer names, without a random-number crate.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// 128 bits as 32 hex digits, unique across processes: two outputs of std's
/// randomly keyed hasher (seeded from the operating system) over a
/// process-wide counter, the process id and the time.
pub(super) fn random_hex() -> String {
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let state = RandomState::new();
    let seed = (count, std::process::id(), nanos);
    let high = state.hash_one((0u8, seed));
    let low = state.hash_one((1u8, seed));
    format!("{high:016x}{low:016x}")
}
