//! The periodic maintenance task of the in-process stores.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

/// A store's shared state that needs periodic work (removing expired keys).
pub(crate) trait Maintained: Send + Sync + 'static {
    /// The flag that says the task runs (one task per store).
    fn maintenance_running(&self) -> &AtomicBool;

    /// The period of the task.
    fn maintenance_interval(&self) -> Duration;

    /// One round of maintenance.
    fn maintain(&self) -> impl Future<Output = ()> + Send;
}

/// Spawns the maintenance task of `inner` unless it runs, if a tokio runtime
/// is current (else the next call tries again).
///
/// The task holds only a weak reference: it ends once every clone of the
/// store is dropped. When it ends, or is dropped with its runtime, it clears
/// the flag, so a later use spawns it again.
pub(crate) fn ensure<T: Maintained>(inner: &Arc<T>) {
    let running = inner.maintenance_running();
    if running.load(Ordering::Acquire) {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if running.swap(true, Ordering::AcqRel) {
        return;
    }
    let guard = Running(Arc::downgrade(inner));
    let period = inner.maintenance_interval();
    handle.spawn(async move {
        let guard = guard;
        let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(inner) = guard.0.upgrade() else {
                break;
            };
            inner.maintain().await;
        }
    });
}

/// Clears the "maintenance running" flag when the task ends or is dropped.
struct Running<T: Maintained>(Weak<T>);

impl<T: Maintained> Drop for Running<T> {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            inner.maintenance_running().store(false, Ordering::Release);
        }
    }
}
