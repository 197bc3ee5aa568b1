//! What a callback is deduplicated by: [`DedupKey`] and the
//! [`KeyExtractor`] strategy.

use std::fmt;
use std::sync::Arc;

use http::Request;

use crate::TaskEvent;

/// The key a callback is deduplicated by: by default its task id.
///
/// Two callbacks with equal keys are the same work: the second one is
/// answered as a duplicate instead of reaching the inner service. Stores see
/// only this key (the in-process stores keep a 128-bit hash of it, see
/// [`CompactStore`](crate::backend::CompactStore)).
///
/// ```
/// use taskhook::dedup::DedupKey;
///
/// let key = DedupKey::new("task_01");
/// assert_eq!(key.as_str(), "task_01");
/// assert_eq!(key, DedupKey::from("task_01"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupKey(Arc<str>);

impl DedupKey {
    /// A key made of `key`.
    ///
    /// The key is shared, not copied, when it comes as an `Arc<str>`: the
    /// default [`ById`] keys share the event's id.
    pub fn new(key: impl Into<Arc<str>>) -> Self {
        Self(key.into())
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for DedupKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for DedupKey {
    fn from(key: &str) -> Self {
        Self::new(key)
    }
}

impl From<String> for DedupKey {
    fn from(key: String) -> Self {
        Self::new(key)
    }
}

impl From<Arc<str>> for DedupKey {
    fn from(key: Arc<str>) -> Self {
        Self::new(key)
    }
}

impl fmt::Debug for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Chooses the [`DedupKey`] of a callback.
///
/// The default, [`ById`], keys on the task id. [`ByIdAndStatus`] keys on the
/// id and the status, so a `failed` push and a later `completed` push of the
/// same task both run. Any `Fn(&TaskEvent) -> Option<DedupKey>` is a key
/// extractor too.
///
/// Returning `None` lets the request through to the inner service without
/// deduplication (say, for statuses you do not want to remember).
///
/// ```
/// use http::Request;
/// use taskhook::dedup::{DedupKey, KeyExtractor};
/// use taskhook::{DedupLayer, TaskEvent};
///
/// /// Tenants share one route; the same task id may exist for two tenants.
/// #[derive(Clone)]
/// struct ByTenantAndId;
///
/// impl KeyExtractor for ByTenantAndId {
///     fn extract<B>(&self, event: &TaskEvent, request: &Request<B>) -> Option<DedupKey> {
///         let tenant = request.headers().get("x-tenant")?.to_str().ok()?;
///         Some(DedupKey::new(format!("{tenant}/{}", event.id())))
///     }
/// }
///
/// let layer = DedupLayer::new().key(ByTenantAndId);
/// // or with a closure:
/// let layer = DedupLayer::new().key(|event: &TaskEvent| {
///     event.is_final().then(|| DedupKey::from(event.id()))
/// });
/// ```
pub trait KeyExtractor {
    /// The key of `request`, whose parsed callback is `event`; `None` skips
    /// deduplication for this request.
    fn extract<B>(&self, event: &TaskEvent, request: &Request<B>) -> Option<DedupKey>;
}

impl<F> KeyExtractor for F
where
    F: Fn(&TaskEvent) -> Option<DedupKey>,
{
    fn extract<B>(&self, event: &TaskEvent, _request: &Request<B>) -> Option<DedupKey> {
        self(event)
    }
}

/// Keys a callback on its task id (the default [`KeyExtractor`]).
///
/// ```
/// use http::Request;
/// use taskhook::dedup::{ById, DedupKey, KeyExtractor};
/// use taskhook::TaskEvent;
///
/// let event = TaskEvent::from_slice(br#"{"id":"task_01","status":"completed"}"#)?;
/// let key = ById.extract(&event, &Request::new(()));
/// assert_eq!(key, Some(DedupKey::new("task_01")));
/// # Ok::<(), taskhook::event::PayloadError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ById;

impl KeyExtractor for ById {
    fn extract<B>(&self, event: &TaskEvent, _request: &Request<B>) -> Option<DedupKey> {
        Some(DedupKey::new(Arc::clone(event.shared_id())))
    }
}

/// Keys a callback on its task id and its status: a push with a new status
/// for a known task runs again.
///
/// ```
/// use http::Request;
/// use taskhook::dedup::{ByIdAndStatus, KeyExtractor};
/// use taskhook::TaskEvent;
///
/// let failed = TaskEvent::from_slice(br#"{"id":"task_01","status":"failed"}"#)?;
/// let completed = TaskEvent::from_slice(br#"{"id":"task_01","status":"completed"}"#)?;
/// let req = Request::new(());
/// assert_ne!(
///     ByIdAndStatus.extract(&failed, &req),
///     ByIdAndStatus.extract(&completed, &req),
/// );
/// # Ok::<(), taskhook::event::PayloadError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ByIdAndStatus;

impl KeyExtractor for ByIdAndStatus {
    fn extract<B>(&self, event: &TaskEvent, _request: &Request<B>) -> Option<DedupKey> {
        // Task ids never hold control characters, so NUL cannot be forged
        // into a colliding key.
        let status = event.status().map_or("", |s| s.as_str());
        Some(DedupKey::new(format!("{}\0{status}", event.id())))
    }
}
