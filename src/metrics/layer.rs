use tower_layer::Layer;

use super::Metrics;

/// Applies [`Metrics`] to a service: counts every answer by status code
/// (`taskhook_callbacks_total`) and records the time from the request to
/// the response head (`taskhook_ack_duration_seconds`).
///
/// Put it outermost on the callback route, so that it sees every answer:
/// the stack's own (`202`, a duplicate's `200`, the `503`s, a `400`) and
/// those of the layers in front of the stack (a wrong path token's `404`).
/// See the [module docs](super) for every metric.
///
/// ```
/// use taskhook::metrics::MetricsLayer;
/// use tower::{service_fn, ServiceBuilder};
///
/// let route = ServiceBuilder::new()
///     .layer(MetricsLayer::new())
///     .service(service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     }));
/// # drop(route);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsLayer {
    _private: (),
}

impl MetricsLayer {
    /// A new layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics::new(inner)
    }
}
