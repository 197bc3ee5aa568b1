//! Measures the memory the dedup store needs per remembered task id.
//!
//! ```sh
//! cargo run --release -p taskhook-tools --bin dedup_memory            # 1,000,000 keys
//! cargo run --release -p taskhook-tools --bin dedup_memory -- 200000  # another count
//! ```
//!
//! Linux only (it reads `VmRSS` from `/proc/self/status`). Each measurement
//! runs in a fresh child process (this program started again with a mode),
//! so no allocation of one measurement is reused by the next. For each mode
//! it fills a store with N distinct 31-byte ids, runs moka's maintenance
//! (for the moka modes), and reports (RSS after - RSS before) / N, read
//! while the store is alive:
//!
//! - `store`: the real `MokaStore`, through its `DedupStore` API (claim then
//!   complete each id): what a deployment pays per id;
//! - `compact`: the real `CompactStore` (the default store), the same way,
//!   with a capacity of 2 N so that all N ids are kept (a full shard forgets
//!   its oldest eighth; capacity reserves no memory);
//! - `string-key` / `hashed-key`: a bare moka cache with the same settings
//!   (LRU, TTL) and a 16-byte value, keyed by the id `String` or by its
//!   128-bit hash: the saving of compact keys alone.

use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::policy::EvictionPolicy;
use taskhook::dedup::{Claim, DedupKey};
use taskhook::{backend::CompactStore, backend::MokaStore, dedup::DedupStore};

use taskhook_tools::memory::{self as modes, rss_bytes};

const MODES: [&str; 4] = ["store", "compact", "string-key", "hashed-key"];

fn main() {
    modes::run(
        &MODES,
        1_000_000,
        |n| format!("{n} keys, 31-byte ids, bytes = RSS growth / keys"),
        measure,
    );
}

fn id(i: u64) -> String {
    // 31 bytes, like `task_01KA040M0HP1GJWBJYZMKX1XS1`.
    format!("task_{i:026}")
}

#[tokio::main(flavor = "current_thread")]
async fn measure(mode: &str, n: u64) {
    let ttl = Duration::from_secs(24 * 3600);
    let before = rss_bytes();
    let started = Instant::now();
    // Each mode reports while its store is alive.
    match mode {
        "store" => {
            let store = MokaStore::builder().max_capacity(n).build();
            for i in 0..n {
                let key = DedupKey::new(id(i));
                let Ok(Claim::Acquired(token)) = store.claim(&key).await else {
                    panic!("a new key is claimed");
                };
                let _ = store.complete(&key, &token).await;
            }
            store.run_pending_tasks().await;
            report(mode, n, before, started, store.entry_count());
        }
        "compact" => {
            // Each shard holds `max_capacity / shards` keys and a full shard
            // forgets its oldest eighth: twice the capacity keeps all N
            // (capacity reserves no memory).
            let store = CompactStore::builder().max_capacity(2 * n).build();
            for i in 0..n {
                let key = DedupKey::new(id(i));
                let Ok(Claim::Acquired(token)) = store.claim(&key).await else {
                    panic!("a new key is claimed");
                };
                let _ = store.complete(&key, &token).await;
            }
            report(mode, n, before, started, store.entry_count());
        }
        "string-key" => {
            let cache: Cache<String, [u8; 16]> = builder(n, ttl);
            for i in 0..n {
                cache.insert(id(i), [0; 16]).await;
            }
            cache.run_pending_tasks().await;
            report(mode, n, before, started, cache.entry_count());
        }
        _ => {
            let cache: Cache<u128, [u8; 16]> = builder(n, ttl);
            let hasher = std::collections::hash_map::RandomState::new();
            for i in 0..n {
                let id = id(i);
                let key = (u128::from(std::hash::BuildHasher::hash_one(&hasher, (0u8, &id))) << 64)
                    | u128::from(std::hash::BuildHasher::hash_one(&hasher, (1u8, &id)));
                cache.insert(key, [0; 16]).await;
            }
            cache.run_pending_tasks().await;
            report(mode, n, before, started, cache.entry_count());
        }
    }
}

fn builder<K, V>(n: u64, ttl: Duration) -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(n)
        .eviction_policy(EvictionPolicy::lru())
        .time_to_live(ttl)
        .build()
}

fn report(mode: &str, n: u64, before: u64, started: Instant, entries: u64) {
    let grown = rss_bytes().saturating_sub(before);
    println!(
        "{mode:>10}: {entries} entries, {:.1} MiB, {} bytes/key, filled in {:.2?}",
        grown as f64 / (1024.0 * 1024.0),
        grown / n.max(1),
        started.elapsed(),
    );
}
