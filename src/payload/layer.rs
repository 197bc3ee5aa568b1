use tower_layer::Layer;

use super::Payload;

/// The default limit on a callback body: 256 KiB.
pub(crate) const DEFAULT_LIMIT: usize = 256 * 1024;

/// Applies [`Payload`] to a service: buffer the body (bounded), parse it into
/// a [`TaskEvent`](crate::TaskEvent) once, and put it in the request
/// extensions.
///
/// See the [module docs](crate::payload) for the responses it writes, and
/// its [example](crate::payload#example) for the settings.
#[derive(Debug, Clone, Copy)]
pub struct PayloadLayer {
    limit: usize,
    in_full: bool,
}

impl PayloadLayer {
    /// A layer with the default body limit of 256 KiB.
    pub fn new() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            in_full: false,
        }
    }

    /// Sets the largest body accepted, in bytes (default 256 KiB); larger
    /// bodies get `413 Payload Too Large` without being read to the end.
    #[must_use]
    pub fn limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }

    /// Sets whether the whole [`TaskEvent`](crate::TaskEvent) is parsed
    /// when the body arrives (`true`), or only the id and the scalar fields,
    /// the rest on first use (`false`, the default). Both validate the
    /// whole body and answer the same bodies the same way.
    ///
    /// The default keeps the acknowledgement fast: the first pass costs a
    /// fraction of a full parse, and a duplicate that the dedup layer
    /// answers never pays for the rest. But a handler that reads the whole
    /// event then pays the rest on top, which in all costs more than one
    /// full pass: choose `true` when every handler reads the result and
    /// acknowledging fast matters less than the total (`BENCHMARKS.md`,
    /// "Parse and id extraction", has the figures).
    #[must_use]
    pub fn parse_in_full(mut self, in_full: bool) -> Self {
        self.in_full = in_full;
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
        Payload::new(inner)
            .limit(self.limit)
            .parse_in_full(self.in_full)
    }
}
