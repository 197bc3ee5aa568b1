//! Tracing: each attempt runs in a DEBUG span under the request's span, and
//! a subscriber at INFO makes no span per event.

use std::sync::{Arc, Mutex};

use http::StatusCode;
use taskhook::fast_ack::FastAckLayer;

use crate::common::{send, until};
use crate::support::{handler, stack, status};

/// A span's name and its parent's name.
type Named = (String, Option<String>);

/// Records each new span's name with its parent's name.
#[derive(Clone, Default)]
struct SpanTree(Arc<Mutex<Vec<Named>>>);

impl<S> tracing_subscriber::Layer<S> for SpanTree
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        _attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let span = ctx.span(id).unwrap();
        let parent = span.parent().map(|p| p.name().to_owned());
        self.0
            .lock()
            .unwrap()
            .push((span.name().to_owned(), parent));
    }
}

/// The spans that three filters let through, recorded by one global
/// subscriber for the whole test binary: a scoped one (`set_default`) races
/// with tests on other threads that register the same callsites first, and
/// then never sees the spans.
struct Trees {
    all: SpanTree,
    info: SpanTree,
    info_and_attempts: SpanTree,
}

fn trees() -> &'static Trees {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::{EnvFilter, Layer};

    static TREES: std::sync::OnceLock<Trees> = std::sync::OnceLock::new();
    TREES.get_or_init(|| {
        let trees = Trees {
            all: SpanTree::default(),
            info: SpanTree::default(),
            info_and_attempts: SpanTree::default(),
        };
        let subscriber = tracing_subscriber::registry()
            .with(trees.all.clone())
            .with(trees.info.clone().with_filter(EnvFilter::new("info")))
            .with(
                trees
                    .info_and_attempts
                    .clone()
                    .with_filter(EnvFilter::new("info,taskhook::fast_ack::attempt=debug")),
            );
        tracing::subscriber::set_global_default(subscriber)
            .expect("the only global subscriber of this test binary");
        trees
    })
}

fn has(tree: &SpanTree, span: &Named) -> bool {
    tree.0.lock().unwrap().contains(span)
}

#[tokio::test]
async fn each_attempt_runs_in_a_debug_span_under_the_request_span() {
    use tracing::Instrument;

    let trees = trees();
    let layer = FastAckLayer::new();
    let handle = layer.handle();
    let service = stack(layer, handler(|_| async { status(StatusCode::OK) }));
    handle.started().await;
    send(&service, "task_traced")
        .instrument(tracing::info_span!("request"))
        .await;
    until("processed", || handle.stats().processed == 1).await;

    let attempt = ("fast_ack.attempt".to_owned(), Some("request".to_owned()));
    assert!(
        has(&trees.all, &attempt),
        "{:?}",
        trees.all.0.lock().unwrap()
    );
    assert!(has(&trees.info_and_attempts, &attempt));
    // A subscriber at INFO makes no span per event (it would cost every
    // event 0.5 to 0.9 µs with `tracing_subscriber::fmt`).
    assert!(has(&trees.info, &("request".to_owned(), None)));
    assert!(
        !trees
            .info
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|(name, _)| name == "fast_ack.attempt"),
        "{:?}",
        trees.info.0.lock().unwrap()
    );
}
