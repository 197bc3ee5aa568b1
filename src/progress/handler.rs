//! What runs an intermediate event: the [`ProgressHandler`] strategy and
//! its implementations.

use std::fmt;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use tower_service::Service;

use crate::TaskEvent;

/// The error of a failed progress handler.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs an intermediate event (a state before the final one): the
/// progress handler of a [`ProgressLayer`](super::ProgressLayer).
///
/// Implemented for:
///
/// - every async closure `Fn(TaskEvent) -> impl Future<Output = O>` where
///   `O` is `()` or `Result<(), E>` with `E` an error
///   ([`ProgressOutcome`]);
/// - a tower service of [`TaskEvent`]s wrapped in [`ServiceHandler`] (its
///   response is dropped, its error is the failure);
/// - [`Discard`], the default, which stands for "no handler".
///
/// An `Err` is logged at `WARN` and the push answered `200` with
/// `taskhook-ignored: progress_failed`: see the [module
/// docs](super#when-the-progress-handler-fails) for why.
///
/// ```
/// use taskhook::progress::{ProgressHandler, ProgressLayer};
/// use taskhook::{DedupLayer, TaskEvent};
///
/// #[derive(Debug)]
/// struct Log;
///
/// impl ProgressHandler for Log {
///     async fn handle(&self, event: TaskEvent) -> Result<(), taskhook::progress::BoxError> {
///         println!("{} is {:?} at {:?} %", event.id(), event.raw_status(), event.progress());
///         Ok(())
///     }
/// }
///
/// let dedup = DedupLayer::new();
/// let layer = ProgressLayer::new(&dedup).on_progress(Log);
/// // or with a closure:
/// let layer = ProgressLayer::new(&dedup).on_progress(|event: TaskEvent| async move {
///     println!("{} is {:?}", event.id(), event.raw_status());
/// });
/// # drop(layer);
/// ```
pub trait ProgressHandler: Send + Sync + 'static {
    /// Handles one intermediate event; an `Err` is logged and the push
    /// answered `200`.
    fn handle(&self, event: TaskEvent) -> impl Future<Output = Result<(), BoxError>> + Send;
}

impl<F, Fut> ProgressHandler for F
where
    F: Fn(TaskEvent) -> Fut + Send + Sync + 'static,
    Fut: Future + Send,
    Fut::Output: ProgressOutcome,
{
    fn handle(&self, event: TaskEvent) -> impl Future<Output = Result<(), BoxError>> + Send {
        let future = self(event);
        async move { future.await.into_result() }
    }
}

/// What a progress closure may return: `()` (it cannot fail) or
/// `Result<(), E>`.
pub trait ProgressOutcome: sealed::Sealed {
    /// The outcome as a result.
    fn into_result(self) -> Result<(), BoxError>;
}

impl ProgressOutcome for () {
    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError>> ProgressOutcome for Result<(), E> {
    fn into_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for () {}
    impl<E> Sealed for Result<(), E> {}
}

/// No progress handler, the default: intermediate events are answered
/// `200` with `taskhook-ignored: intermediate` and dropped.
///
/// As a type it stands for "none" in
/// [`ProgressLayer`](super::ProgressLayer)'s parameters; passed to
/// [`on_progress`](super::ProgressLayer::on_progress) it is a handler that
/// does nothing (and the layer then deduplicates and checks intermediate
/// events as for any handler).
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl ProgressHandler for Discard {
    fn handle(&self, _event: TaskEvent) -> impl Future<Output = Result<(), BoxError>> + Send {
        std::future::ready(Ok(()))
    }
}

/// A tower [`Service`] of [`TaskEvent`]s as a [`ProgressHandler`]: each
/// event is sent to a clone of it once it is ready; its response is
/// dropped and its error is the handler's failure.
///
/// ```
/// use std::convert::Infallible;
/// use taskhook::progress::{ProgressLayer, ServiceHandler};
/// use taskhook::{DedupLayer, TaskEvent};
/// use tower::service_fn;
///
/// let progress = service_fn(|event: TaskEvent| async move {
///     println!("{} is {:?}", event.id(), event.raw_status());
///     Ok::<_, Infallible>(())
/// });
/// let layer = ProgressLayer::new(&DedupLayer::new()).on_progress(ServiceHandler::new(progress));
/// # drop(layer);
/// ```
pub struct ServiceHandler<S> {
    // Behind a mutex, held only to clone it: the handler is shared by every
    // request, and a tower service need not be `Sync`.
    service: Mutex<S>,
}

impl<S> ServiceHandler<S> {
    /// Wraps `service`.
    pub fn new(service: S) -> Self {
        Self {
            service: Mutex::new(service),
        }
    }

    /// Consumes `self`, returning the service.
    pub fn into_inner(self) -> S {
        self.service
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S: fmt::Debug> fmt::Debug for ServiceHandler<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ServiceHandler")
            .field(&self.service)
            .finish()
    }
}

impl<S> ProgressHandler for ServiceHandler<S>
where
    S: Service<TaskEvent> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
{
    fn handle(&self, event: TaskEvent) -> impl Future<Output = Result<(), BoxError>> + Send {
        // Nothing panics while the lock is held (a clone): a poisoned lock
        // still holds a usable service.
        let mut service = self
            .service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        async move {
            std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            service.call(event).await.map(drop).map_err(Into::into)
        }
    }
}
