//! Work that outlives its request: polled in the request's future, and
//! moved onto a task of its own if that future is dropped before the work
//! ended.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::runtime::Handle;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Polls a future in place; dropped before the future completed (a client
/// gone, an outer timeout), it spawns the rest of it on the runtime it was
/// made on, where it runs to the end.
///
/// Not while unwinding: the future is taken out of `Detach` while it is
/// polled, so one that panics is dropped with the panic, never handed over
/// to be polled again. Made outside a tokio runtime, `Detach` cannot hand
/// over, and drops the future with itself.
pub(crate) struct Detach<T: Send + 'static> {
    future: Option<BoxFuture<T>>,
    runtime: Option<Handle>,
}

impl<T: Send + 'static> Detach<T> {
    pub(crate) fn new(future: impl Future<Output = T> + Send + 'static) -> Self {
        Self::on(Handle::try_current().ok(), future)
    }

    /// Hands over to `runtime` (a caller that already holds the current
    /// runtime's handle saves looking it up again).
    pub(crate) fn on(
        runtime: Option<Handle>,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Self {
        Self {
            future: Some(Box::pin(future)),
            runtime,
        }
    }
}

impl<T: Send + 'static> Future for Detach<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut future = self.future.take().expect("polled after completion");
        let output = future.as_mut().poll(cx);
        if output.is_pending() {
            self.future = Some(future);
        }
        output
    }
}

impl<T: Send + 'static> Drop for Detach<T> {
    fn drop(&mut self) {
        if let (Some(future), Some(runtime)) = (self.future.take(), &self.runtime) {
            tracing::debug!("response future dropped mid-way; the work goes on as a task");
            runtime.spawn(future);
        }
    }
}
