//! [`ServiceBuilderExt`]: one method per layer on tower's `ServiceBuilder`.

use tower_layer::Stack;

use crate::dedup::{DedupLayer, DedupStore, KeyExtractor};
use crate::fast_ack::FastAckLayer;
use crate::payload::PayloadLayer;

/// Adds the taskhook layers to [`tower::ServiceBuilder`], in the
/// recommended order: payload, dedup, fast-ack.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use taskhook::body::BufferedBody;
/// use taskhook::fast_ack::FastAckLayer;
/// use taskhook::ServiceBuilderExt;
/// use tower::{service_fn, ServiceBuilder};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (fast_ack, handle) = FastAckLayer::builder().concurrency(4).build();
/// let service = ServiceBuilder::new()
///     .task_payload()
///     .dedup_tasks()
///     .fast_ack(fast_ack)
///     .service(service_fn(|_req: Request<BufferedBody>| async {
///         Ok::<_, Infallible>(Response::new(String::new()))
///     }));
/// # drop((service, handle));
/// # }
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed<L> + Sized {
    /// Buffers and parses the callback body with the default
    /// [`PayloadLayer`] (256 KiB limit).
    fn task_payload(self) -> tower::ServiceBuilder<Stack<PayloadLayer, L>>;

    /// Runs the rest of the stack once per task id with the default
    /// [`DedupLayer`].
    fn dedup_tasks(self) -> tower::ServiceBuilder<Stack<DedupLayer, L>>;

    /// Deduplicates with a configured [`DedupLayer`] (another store or key).
    fn dedup_with<K: KeyExtractor, St: DedupStore>(
        self,
        layer: DedupLayer<K, St>,
    ) -> tower::ServiceBuilder<Stack<DedupLayer<K, St>, L>>;

    /// Answers `202` at once and runs the rest in the background with
    /// `layer` (keep its [`handle`](FastAckLayer::handle) first).
    fn fast_ack(self, layer: FastAckLayer) -> tower::ServiceBuilder<Stack<FastAckLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for tower::ServiceBuilder<L> {
    fn task_payload(self) -> tower::ServiceBuilder<Stack<PayloadLayer, L>> {
        self.layer(PayloadLayer::new())
    }

    fn dedup_tasks(self) -> tower::ServiceBuilder<Stack<DedupLayer, L>> {
        self.layer(DedupLayer::new())
    }

    fn dedup_with<K: KeyExtractor, St: DedupStore>(
        self,
        layer: DedupLayer<K, St>,
    ) -> tower::ServiceBuilder<Stack<DedupLayer<K, St>, L>> {
        self.layer(layer)
    }

    fn fast_ack(self, layer: FastAckLayer) -> tower::ServiceBuilder<Stack<FastAckLayer, L>> {
        self.layer(layer)
    }
}

mod sealed {
    pub trait Sealed<L> {}
    impl<L> Sealed<L> for tower::ServiceBuilder<L> {}
}
