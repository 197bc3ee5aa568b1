//! The dedup layer over the real stack: `PayloadLayer` + `DedupLayer` + a
//! handler that counts its calls. Schedules, TTLs and waits run on paused
//! tokio time. One test binary, a module per topic; the shared helpers are
//! in `support`.

use taskhook_test_support as common;
mod support;

mod outcomes;
mod panics;
mod store_errors;
mod stores;
mod tasks;
mod waits;
mod wiring;
