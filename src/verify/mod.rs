//! Authenticity checks for a callback route (feature `verify`): a secret
//! path token, an IP allowlist, a static header secret, confirm-by-refetch,
//! and the signatures of the providers that sign (Standard Webhooks `v1`
//! and `v1a`, fal, KIE).
//!
//! The provider does not sign its callbacks: anyone who learns the callback
//! URL can post a fake "completed" task. Each defence is a small layer of its
//! own, so a route stacks only the ones it needs and each can be tested and
//! reasoned about alone (one `VerifyLayer` with a builder would have to be
//! generic over the refetch client even where no refetch is wanted, and
//! would hide the order, which matters):
//!
//! | layer | needs | refuses with | sits |
//! |---|---|---|---|
//! | [`PathTokenLayer`] | the path | `404`, empty body, as "no route" | first |
//! | [`IpAllowLayer`] | the peer address | `403`; `500` if the peer address is missing | before the payload |
//! | [`HeaderSecretLayer`] | a header | `401` `invalid_secret` | before the payload |
//! | [`StandardWebhooksLayer`] | the raw body ([`RawPayload`](crate::RawPayload)) | `401`; `500` without the payload layer | after the payload |
//! | [`FalSignatureLayer`] | the raw body, fal's public keys | `401`; `503` + `Retry-After` while the keys cannot be fetched; `500` without the payload layer | after the payload |
//! | [`KieSignatureLayer`] | the raw body (for the task id) | `401`; `500` without the payload layer | after the payload, before a refetch |
//! | [`RefetchLayer`](refetch::RefetchLayer) | the parsed [`TaskEvent`](crate::TaskEvent) | `403` forged, `503` provider unavailable; `500` without the payload layer | after the payload, last |
//!
//! Those that need no body come first, so garbage is refused before a
//! byte of it is read; those that need the body come after
//! [`PayloadLayer`](crate::PayloadLayer), which reads it once, bounded,
//! and leaves it in the request unchanged. A rejection never reaches the
//! inner service. Which one a provider needs is its profile's
//! [`Authenticity`](crate::provider::Authenticity).
//!
//! # Recommended order
//!
//! ```
//! use std::convert::Infallible;
//! use std::net::SocketAddr;
//! use http::{Request, Response, StatusCode};
//! use taskhook::body::BufferedBody;
//! use taskhook::verify::refetch::{ConfirmError, ConfirmTask, Confirmation};
//! use taskhook::verify::{refetch::RefetchLayer, IpAllowLayer, PathSecret, PathTokenLayer, PeerAddr};
//! use taskhook::{PayloadLayer, TaskEvent};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! /// Stands in for `HttpConfirm` (feature `refetch`), which asks the provider.
//! struct Provider;
//! impl ConfirmTask for Provider {
//!     async fn confirm(&self, pushed: &TaskEvent) -> Result<Confirmation, ConfirmError> {
//!         Ok(Confirmation::new(pushed.clone()))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let service = ServiceBuilder::new()
//!     // 1. no body needed: refuse scanners and strangers cheaply
//!     .layer(PathTokenLayer::new("k3Qm9x_T2vLr8pZa".parse::<PathSecret>()?).prefix("/hooks"))
//!     .layer(IpAllowLayer::new(["203.0.113.0/24".parse()?]))
//!     // 2. read and parse the body once
//!     .layer(PayloadLayer::new())
//!     // 3. body needed: (StandardWebhooksLayer for a provider that signs) and refetch
//!     .layer(RefetchLayer::new(Provider))
//!     // 4. dedup and fast-ack come after every check: a refused push never
//!     //    touches their state
//!     .service(service_fn(|req: Request<BufferedBody>| async move {
//!         let event = req.extensions().get::<TaskEvent>().expect("set by PayloadLayer");
//!         println!("task {} is {:?}", event.id(), event.status());
//!         Ok::<_, Infallible>(Response::new(String::new()))
//!     }));
//!
//! let push = |path: &str, peer: &str| {
//!     let mut req = Request::post(path)
//!         .body(r#"{"code":200,"data":{"id":"task_01","status":"completed"}}"#.to_owned())
//!         .unwrap();
//!     req.extensions_mut().insert(PeerAddr(peer.parse::<SocketAddr>().unwrap()));
//!     req
//! };
//! let ok = service.clone().oneshot(push("/hooks/k3Qm9x_T2vLr8pZa/callback", "203.0.113.7:443")).await?;
//! assert_eq!(ok.status(), StatusCode::OK);
//! let wrong_token = service.clone().oneshot(push("/hooks/guess/callback", "203.0.113.7:443")).await?;
//! assert_eq!(wrong_token.status(), StatusCode::NOT_FOUND);
//! let stranger = service.oneshot(push("/hooks/k3Qm9x_T2vLr8pZa/callback", "198.51.100.1:443")).await?;
//! assert_eq!(stranger.status(), StatusCode::FORBIDDEN);
//! # Ok(()) }
//! ```
//!
//! # Secret path token
//!
//! Register `https://host/hooks/<token>` as the webhook base; pushes arrive
//! at `/hooks/<token>/callback`. [`PathTokenLayer`] reads the path of the
//! URI **as the layer receives it**, skips the configured
//! [`prefix`](PathTokenLayer::prefix) (whole segments), and takes the next
//! segment as the token:
//!
//! - on a plain hyper service, or around a whole axum `Router`, the path is
//!   the full request path: `.prefix("/hooks")`;
//! - on an axum route (`.route("/hooks/{token}/callback", post(h).layer(..))`)
//!   the path is still the full path: `.prefix("/hooks")`;
//! - inside `Router::nest("/hooks", ..)`, axum strips the nest prefix before
//!   the inner router's layers run: no prefix (the token is the first
//!   segment).
//!
//! The token is compared in constant time: the SHA-256 digests of the
//! candidate and of every configured [`PathSecret`] are compared with
//! [`subtle`]'s constant-time equality, all of them, without early exit, so
//! timing tells neither a common prefix nor the secret's length. Several
//! secrets may be accepted at once for rotation
//! ([`PathTokenLayer::also_accept`]). A wrong or missing token gets a `404`
//! with an empty body and no content type, the same bytes axum answers for a
//! path no route matches. The secret is never logged: only its digest is
//! kept, `Debug` is redacted, and a refusal logs no path.
//! [`PathTokenLayer::strip_token`] removes the segment from the URI the inner
//! service sees (`/hooks/<token>/callback` becomes `/hooks/callback`): use it
//! when the inner service routes or logs by path. A `TraceLayer` or access
//! log *outside* this layer still sees the token: put such layers inside it,
//! or redact. axum's `OriginalUri` extension keeps the token too.
//!
//! # IP allowlist
//!
//! [`IpAllowLayer`] lets through clients whose address is in one of the
//! allowed [`Cidr`] blocks (IPv4 and IPv6; an IPv4-mapped IPv6 address such
//! as `::ffff:203.0.113.7`, what a dual-stack socket reports, is matched as
//! IPv4) and puts the decided [`ClientIp`] in the extensions.
//!
//! The direct peer comes from the request extensions: the [`PeerAddr`]
//! extension, or axum's `ConnectInfo<SocketAddr>` (feature `axum`; serve with
//! `into_make_service_with_connect_info::<SocketAddr>()`), or your own
//! lookup ([`IpAllowLayer::peer_addr_with`]). With plain hyper, insert
//! `PeerAddr` per connection:
//!
//! ```no_run
//! use hyper::body::Incoming;
//! use hyper_util::rt::TokioIo;
//! use taskhook::verify::{IpAllowLayer, PeerAddr};
//! use tower::{Layer, ServiceExt};
//!
//! # async fn serve(listener: tokio::net::TcpListener) -> Result<(), Box<dyn std::error::Error>> {
//! let service = IpAllowLayer::new(["203.0.113.0/24".parse()?]).layer(tower::service_fn(
//!     |_req: http::Request<Incoming>| async { Ok::<_, std::convert::Infallible>(http::Response::new(String::new())) },
//! ));
//! loop {
//!     let (stream, remote) = listener.accept().await?;
//!     let service = service.clone();
//!     let per_connection = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
//!         req.extensions_mut().insert(PeerAddr(remote));
//!         service.clone().oneshot(req)
//!     });
//!     tokio::spawn(hyper::server::conn::http1::Builder::new()
//!         .serve_connection(TokioIo::new(stream), per_connection));
//! }
//! # }
//! ```
//!
//! No peer address at all is a misconfiguration of the server, not the
//! client's fault: `500` (logged as an error), which the provider retries.
//!
//! `X-Forwarded-For` (or `Forwarded`, RFC 7239, chosen with
//! [`IpAllowLayer::forwarded_header`]; only the chosen one is read) is read
//! **only** when the direct peer is in the explicit
//! [`trusted_proxies`](IpAllowLayer::trusted_proxies) list. The list is then
//! walked from the right: each trusted proxy hands over to the address it
//! forwarded for, and the first address that is not a trusted proxy is the
//! client. Anything a client wrote to the left of that is never looked at,
//! so a spoofed header from an untrusted peer, or prepended behind a proxy,
//! changes nothing. A hop a trusted proxy wrote that is not an address
//! (`unknown`, an obfuscated `_name`) refuses the request.
//!
//! **A denied address gets `403`, not `404` and not `503`.** A 4xx makes
//! the provider give up on the push, and that is right for a stranger: under
//! the configured list the request can never succeed, and a `503` would
//! ask every stranger to come back. The one real push it can hit is one sent
//! after the provider changed its addresses; a `503` would not save it
//! either (the three retries come within two minutes, before anyone updates
//! the list), while a `403` says plainly in the provider's delivery log and
//! in ours what happened; each refusal is logged at `info` with the peer
//! and client address (addresses are not secrets). Hiding that the endpoint
//! exists is the path token's job: put it first, and a stranger without the
//! token sees only the `404`.
//!
//! # Confirm-by-refetch
//!
//! See [`refetch`]: [`RefetchLayer`](refetch::RefetchLayer) asks the provider for the pushed task
//! and refuses a push the provider contradicts (`403`), or answers `503`
//! while the provider cannot be asked.
//!
//! # Standard Webhooks signatures
//!
//! For providers that do sign, [`StandardWebhooksLayer`] verifies the
//! [Standard Webhooks](https://www.standardwebhooks.com/) signature: the
//! `webhook-id`, `webhook-timestamp` and `webhook-signature` headers, over
//! `{id}.{timestamp}.{raw body}`, with either kind of key the specification
//! defines ([`WebhookKey`] holds one, [`WebhookKey::new`] tells them apart by
//! the prefix):
//!
//! | key | signature entry | check |
//! |---|---|---|
//! | [`WebhookSecret`], `whsec_<base64>` | `v1,<base64>` | HMAC-SHA256 keyed with the decoded secret, compared in constant time |
//! | [`WebhookPublicKey`], `whpk_<base64>` | `v1a,<base64>` | Ed25519 (strict verification) with the 32-byte public key |
//!
//! Any entry of the space-separated signature header may match any
//! accepted key, so a sender rotating keys, or sending both kinds, passes.
//! The timestamp must be within the tolerance (default 5 minutes) of our
//! clock in either direction, against replays. It checks the raw bytes (the
//! [`RawPayload`](crate::RawPayload) extension), so it sits after
//! [`PayloadLayer`](crate::PayloadLayer). The sender's `whsk_` secret key
//! ([`WebhookSigningKey`]) signs `v1a` for tests and simulators; a receiver
//! refuses it ([`InvalidWebhookKey::SigningKey`]) and takes its `whpk_`.
//!
//! **A failed check gets `401`.** Standard Webhooks senders retry any
//! non-2xx, so the code does not cost them a delivery; for a sender that
//! gives up on a 4xx, a bad signature is input that can never succeed
//! (forged or tampered), and a stale timestamp is a replay. The one case of
//! ours, a secret we have not rotated yet, is covered by accepting both
//! secrets during the rotation ([`StandardWebhooksLayer::also_accept`]).
//! Keep the server clock synchronised: a clock off by more than the
//! tolerance refuses every push. The provider of this project does not
//! sign, so this layer is optional.
//!
//! # fal's signatures
//!
//! [`FalSignatureLayer`] checks fal's Ed25519 signature (hex, in
//! `X-Fal-Webhook-Signature`) of
//! `{request id}\n{user id}\n{timestamp}\n{hex(sha256(body))}`, the first
//! three from the `X-Fal-Webhook-Request-Id`, `-User-Id` and `-Timestamp`
//! headers, within a tolerance of 5 minutes. fal publishes its public keys
//! as a JWKS; a [`JwksSource`] says where the layer gets them:
//!
//! - [`JwksSource::fetched`] with an [`HttpJwks`] (feature `refetch`, a
//!   hyper client; fal's URL, `https://rest.alpha.fal.ai/.well-known/jwks.json`,
//!   needs a TLS connector: [`HttpJwks::with_connector`]) or a [`FetchJwks`]
//!   of your own, or [`JwksSource::url`] for a plain-HTTP URL: fetched on the first push, cached for
//!   a time to live (1 hour), fetched again early when no cached key
//!   verifies a signature (how a rotated key is learnt), at most once per
//!   refresh interval (30 s) so a flood of forgeries cannot make us hammer
//!   the URL, one fetch at a time for all the pushes that wait on it;
//! - [`JwksSource::file`], read once (offline use); [`JwksSource::json`],
//!   [`JwksSource::keys`], given in code.
//!
//! **Keys we cannot fetch are our problem, not the sender's**: when no key
//! could be fetched, or the cached ones do not verify a signature and the
//! set cannot be fetched again, the push gets `503`
//! `signing_keys_unavailable` with `Retry-After`, never a 4xx (fal may give
//! up on one). A set that was fetched once keeps verifying while the URL is
//! down. Every fal customer's pushes are signed with the same keys: name
//! your account with [`FalSignatureLayer::user_id`].
//!
//! # KIE's signatures
//!
//! [`KieSignatureLayer`] checks KIE's `X-Webhook-Signature`, the base64
//! HMAC-SHA256 under the account's `webhookHmacKey` ([`KieSecret`]) of
//! `{taskId}.{X-Webhook-Timestamp}` (Unix seconds, within 5 minutes), with
//! the task id read from the body (`data.taskId` or `data.task_id`).
//! **The body is not signed**: the signature proves that KIE sent a
//! callback for that task id recently, not what the callback says, and a
//! captured set of headers can carry another body until the timestamp
//! expires. Confirm the state and the result URLs with
//! [`RefetchLayer`](refetch::RefetchLayer) behind it.
//!
//! # A static header secret
//!
//! Some providers let you choose a header and a value they send with every
//! push (AssemblyAI's `webhook_auth_header_name` and
//! `webhook_auth_header_value`), or send a bearer token.
//! [`HeaderSecretLayer::header`] and [`HeaderSecretLayer::bearer`] check it
//! in constant time, accept several values during a rotation, answer
//! `401` `invalid_secret` when it is missing or wrong, and remove it before
//! the inner service sees the request. It needs no body: put it first.

mod clock;
mod ed25519;
mod fal;
pub mod future;
mod header_secret;
mod ip;
mod kie;
mod path_token;
pub mod refetch;
mod signature;

pub use self::ed25519::{InvalidWebhookKey, WebhookPublicKey, WebhookSigningKey};
pub use self::fal::{
    FalSignature, FalSignatureLayer, FetchJwks, JwksError, JwksErrorKind, JwksSource,
};
#[cfg(feature = "refetch")]
#[cfg_attr(docsrs, doc(cfg(feature = "refetch")))]
pub use self::fal::{HttpJwks, InvalidJwksUrl};
pub use self::header_secret::{HeaderSecret, HeaderSecretLayer, InvalidHeaderSecret};
pub use self::ip::{
    default_peer_addr, Cidr, ClientIp, ForwardedHeader, InvalidCidr, IpAllow, IpAllowLayer,
    PeerAddr, PeerAddrFn,
};
pub use self::kie::{InvalidKieSecret, KieSecret, KieSignature, KieSignatureLayer};
pub use self::path_token::{
    InvalidPathSecret, PathSecret, PathToken, PathTokenLayer, MAX_SECRET_LEN, MIN_SECRET_LEN,
};
pub use self::signature::{
    InvalidWebhookSecret, StandardWebhooks, StandardWebhooksLayer, WebhookKey, WebhookSecret,
};
