use std::sync::Arc;

use tower_layer::Layer;

use super::parse::Parse;
use super::Payload;
use crate::provider::Profile;

/// The default limit on a callback body: 256 KiB.
pub(crate) const DEFAULT_LIMIT: usize = 256 * 1024;

/// Applies [`Payload`] to a service: buffer the body (bounded), parse it into
/// a [`TaskEvent`](crate::TaskEvent) once, and put it in the request
/// extensions.
///
/// See the [module docs](crate::payload) for the responses it writes, and
/// its [example](crate::payload#example) for the settings.
#[derive(Debug, Clone)]
pub struct PayloadLayer {
    limit: usize,
    parse: Parse,
}

impl PayloadLayer {
    /// A layer with the default body limit of 256 KiB.
    pub fn new() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            parse: Parse::default(),
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
        self.parse.in_full = in_full;
        self
    }

    /// Sets the provider profile that reads the body (default: the
    /// [`Apimart`](crate::provider::Apimart) shape, parsed as
    /// [`parse_in_full`](Self::parse_in_full) says). A body the profile
    /// cannot read is answered `400`, like any bad body.
    ///
    /// ```
    /// use taskhook::provider::Apimart;
    /// use taskhook::PayloadLayer;
    ///
    /// let layer = PayloadLayer::new().profile(Apimart::new().parse_in_full(true));
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn profile(mut self, profile: impl Profile) -> Self {
        self.parse.profile = Some(Arc::new(profile));
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
        let mut service = Payload::new(inner).limit(self.limit);
        service.set_parse(self.parse.clone());
        service
    }
}
