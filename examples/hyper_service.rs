//! The taskhook stack on plain hyper 1 and hyper-util, without a framework:
//! a `tower::Service` for the whole server, routing by hand, served per
//! connection with hyper's HTTP/1 builder and shut down gracefully.
//!
//! ```sh
//! cargo run --example hyper_service    # serves 127.0.0.1:8080 until Ctrl-C
//! curl -i http://127.0.0.1:8080/callback -H 'content-type: application/json' \
//!     --data-binary @tests/fixtures/completed-video.json   # 202, then 200 (duplicate)
//! curl -i http://127.0.0.1:8080/callback                   # 405 (the stack's)
//! curl -i http://127.0.0.1:8080/elsewhere                  # 404 (the router's)
//! ```
//!
//! `cargo test --example hyper_service` sends the same to `app()`, served by
//! `serve` on a free port.
//!
//! The stack (payload → dedup → fast-ack → handler) is built once, as one
//! cloneable service; the routing service clones it per request and calls
//! it only for `/callback`. The handler is a `tower::service_fn` over
//! `Request<BufferedBody>` that reads the parsed `TaskEvent` from the
//! extensions (no framework extractor needed). Every other route answers on
//! its own, with the body type unified by `http_body_util::Either`.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use taskhook::body::BufferedBody;
use taskhook::{CallbackStack, FastAckHandle, TaskEvent};
use tokio::net::TcpListener;
use tower::{service_fn, Service, ServiceExt};

/// The callback handler, run by the fast-ack workers.
async fn on_callback(request: Request<BufferedBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    let status = match request.extensions().get::<TaskEvent>() {
        Some(event) => {
            for url in event.urls() {
                println!("  {} {} {}", event.id(), url.kind(), url.url());
            }
            StatusCode::OK
        }
        // Only if the payload layer were missing: our bug, retried, never a 4xx.
        None => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = Response::new(Full::default());
    *response.status_mut() = status;
    Ok(response)
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

/// The server's service, and the handle on the callback stack.
fn app() -> (
    impl Service<
            Request<Incoming>,
            Response = Response<
                impl http_body::Body<Data = Bytes, Error = impl Into<tower::BoxError>>,
            >,
            Error = Infallible,
            Future = impl Send,
        > + Clone
        + Send
        + 'static,
    FastAckHandle,
) {
    let (callback, handle) = CallbackStack::new().build(service_fn(on_callback));
    let app = service_fn(move |request: Request<Incoming>| {
        let callback = callback.clone();
        async move {
            let path = request.uri().path();
            let response = match (request.method(), path) {
                // Any method: the stack answers a non-POST `405` itself.
                (_, "/callback") => callback.oneshot(request).await?.map(Either::Left),
                (&Method::GET, "/health") => plain(StatusCode::OK, "ok").map(Either::Right),
                _ => plain(StatusCode::NOT_FOUND, "").map(Either::Right),
            };
            Ok::<_, Infallible>(response)
        }
    });
    (app, handle)
}

/// Accepts connections until `shutdown` resolves, then waits (bounded) for
/// the open ones to finish.
async fn serve<S, B>(listener: TcpListener, app: S, shutdown: impl std::future::Future<Output = ()>)
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    let graceful = GracefulShutdown::new();
    let builder = hyper::server::conn::http1::Builder::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                // A failed accept (out of file descriptors, ...): wait a
                // little rather than spin. (`taskhook::server`, feature
                // `server`, does all of this, with timeouts.)
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:8080").await?;
    println!("listening on {}", listener.local_addr()?);
    let (app, handle) = app();
    serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    let report = handle.shutdown(Duration::from_secs(20)).await;
    eprintln!(
        "shutdown: drained={} left={}",
        report.drained,
        report.left()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::net::SocketAddr;
    use std::time::Duration;

    use taskhook_test_support::{exchange, fixture, post, until, RawResponse};
    use tokio::net::TcpListener;

    /// `what`, or a failure after 10 s.
    async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .unwrap_or_else(|_| panic!("{what}: nothing within 10 s"))
    }

    async fn get(addr: SocketAddr, path: &str) -> RawResponse {
        let head = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        within(path, exchange(addr, &head, &[])).await
    }

    async fn post_json(addr: SocketAddr, body: &[u8]) -> RawResponse {
        let answer = post(addr, "/callback", Some("application/json"), body);
        within("POST /callback", answer).await
    }

    #[tokio::test]
    async fn the_stack_answers_on_callback_and_the_router_elsewhere() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (app, handle) = super::app();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(super::serve(listener, app, async {
            let _ = stopped.await;
        }));
        within("the workers' start", handle.started()).await;

        assert_eq!(get(addr, "/health").await.status, 200);
        let sample = fixture("completed-video");
        assert_eq!(post_json(addr, &sample).await.status, 202);
        let again = post_json(addr, &sample).await;
        assert_eq!(again.status, 200, "{again:?}");
        assert!(again.header("taskhook-duplicate").is_some(), "{again:?}");
        assert_eq!(post_json(addr, b"{\"code\":200,").await.status, 400);
        assert_eq!(get(addr, "/callback").await.status, 405);
        assert_eq!(get(addr, "/elsewhere").await.status, 404);
        let processed = until("processed", || handle.stats().processed == 1);
        within("processing", processed).await;

        assert!(handle.shutdown(Duration::from_secs(5)).await.drained);
        let _ = stop.send(());
        within("the server's stop", server).await.unwrap();
    }
}
