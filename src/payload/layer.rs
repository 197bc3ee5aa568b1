use tower_layer::Layer;

use super::Payload;

/// The default limit on a callback body: 256 KiB.
pub const DEFAULT_LIMIT: usize = 256 * 1024;

/// Applies [`Payload`] to a service: buffer the body (bounded), parse it into
/// a [`TaskEvent`](crate::TaskEvent) once, and put it in the request
/// extensions.
///
/// See the [module docs](crate::payload) for the responses it writes.
#[derive(Debug, Clone, Copy)]
pub struct PayloadLayer {
    limit: usize,
}

impl PayloadLayer {
    /// A layer with the default body limit of 256 KiB.
    pub fn new() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
        }
    }

    /// Sets the largest body accepted, in bytes; larger bodies get
    /// `413 Payload Too Large` without being read to the end.
    ///
    /// ```
    /// use taskhook::PayloadLayer;
    ///
    /// let layer = PayloadLayer::new().limit(64 * 1024);
    /// ```
    #[must_use]
    pub fn limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }
}

impl Default for PayloadLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for PayloadLayer {
    type Service = Payload<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Payload::new(inner).limit(self.limit)
    }
}
