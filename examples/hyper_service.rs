//! The taskhook stack on plain hyper 1 and hyper-util, without a framework:
//! a `tower::Service` for the whole server, routing by hand, served per
//! connection with hyper's HTTP/1 builder and shut down gracefully.
//!
//! ```sh
//! cargo run --example hyper_service                 # serves 127.0.0.1:8080
//! cargo run --example hyper_service -- --self-test  # checks itself, exits
//! ```
//!
//! The stack (payload → dedup → fast-ack → handler) is built once, as one
//! cloneable service; the routing service clones it per request and calls
//! it only for `POST /callback`. The handler is a `tower::service_fn` over
//! `Request<BufferedBody>` that reads the parsed `TaskEvent` from the
//! extensions (no framework extractor needed). Every other route answers on
//! its own, with the body type unified by `http_body_util::Either`.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
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
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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

async fn self_test(addr: SocketAddr, handle: &FastAckHandle) -> Result<(), String> {
    // Intake opens once the workers have started (until then: 503 starting).
    handle.started().await;
    use support::{expect, expect_status, get, post_json, SAMPLE};

    expect_status("GET /health", &get(addr, "/health").await?, StatusCode::OK)?;
    let first = post_json(addr, "/callback", SAMPLE).await?;
    expect_status("POST /callback", &first, StatusCode::ACCEPTED)?;
    let again = post_json(addr, "/callback", SAMPLE).await?;
    expect_status("the same task again", &again, StatusCode::OK)?;
    expect(
        again.headers.contains_key("taskhook-duplicate"),
        "answered as a duplicate",
    )?;
    let malformed = post_json(addr, "/callback", "{\"code\":200,").await?;
    expect_status("a malformed body", &malformed, StatusCode::BAD_REQUEST)?;
    expect_status(
        "GET /callback",
        &get(addr, "/callback").await?,
        StatusCode::METHOD_NOT_ALLOWED,
    )?;
    expect_status(
        "GET /elsewhere",
        &get(addr, "/elsewhere").await?,
        StatusCode::NOT_FOUND,
    )?;
    support::processed(handle, 1).await
}

#[tokio::main]
async fn main() -> ExitCode {
    let self_test_mode = support::self_test_requested();
    let listen = if self_test_mode {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:8080"
    };
    let listener = match TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("bind {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let Ok(addr) = listener.local_addr() else {
        return ExitCode::FAILURE;
    };
    let (app, handle) = app();
    if self_test_mode {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, async {
            let _ = stop_rx.await;
        }));
        let result = self_test(addr, &handle).await;
        handle.shutdown(Duration::from_secs(5)).await;
        let _ = stop_tx.send(());
        let _ = server.await;
        return support::finish(result);
    }
    println!("listening on {addr}");
    serve(listener, app, support::shutdown_signal()).await;
    let report = handle.shutdown(Duration::from_secs(20)).await;
    eprintln!(
        "shutdown: drained={} left={}",
        report.drained,
        report.left()
    );
    ExitCode::SUCCESS
}
