//! Provider profiles: what one async-task API pushes, and how to read it.
//!
//! taskhook receives the callbacks of many providers. A [`Profile`] says,
//! for one of them:
//!
//! - how to read its body into the one [`TaskEvent`] model (task id, a
//!   normalized [`TaskStatus`](crate::TaskStatus) with the provider's own
//!   [`raw_status`](TaskEvent::raw_status), the result files with their
//!   expiry, the error, the rest under [`extra`](TaskEvent::extra)), so a
//!   handler does not change with the provider;
//! - which [`Events`] it pushes per task (only the final state, or every
//!   change);
//! - how its pushes are authenticated ([`Authenticity`]);
//! - what a `4xx` answer means to it ([`ClientErrors`]);
//! - how long it keeps retrying ([`retry_horizon`](Profile::retry_horizon)),
//!   which sets the default dedup time to live and the signature
//!   tolerance.
//!
//! [`Apimart`] is the default everywhere: the payload layer parses its
//! shape unless told otherwise ([`PayloadLayer::profile`](crate::PayloadLayer::profile)).
//!
//! # Shipped profiles
//!
//! [`by_name`] returns each of them by the name in the first column. Each
//! type's docs say how its body is read and which parts of the contract the
//! provider's docs do not confirm.
//!
//! | name | profile | task id | events | authenticity | a `4xx` | retry horizon |
//! |---|---|---|---|---|---|---|
//! | `apimart` | [`Apimart`] | `data.id` | final | none | give up | ~140 s |
//! | `replicate` | [`Replicate`] | `id` | every change | Standard Webhooks | retried | 2 min |
//! | `fal` | [`Fal`] | `request_id` | final | Ed25519 (fal) | retried (assumed) | 2 h |
//! | `openai` | [`OpenAi`] | `data.id` (thin) | final | Standard Webhooks | retried | 72 h |
//! | `standard-webhooks` | [`StandardWebhooks`] | `data.id` or `webhook-id` | final | Standard Webhooks | retried (assumed) | 24 h (assumed) |
//! | `kie` | [`Kie`] | `data.taskId` | final | HMAC over id and time (KIE) | give up (assumed) | 1 h (assumed) |
//! | `kling` | [`Kling`] | `task_id` | every change | none | give up (assumed) | 1 h (assumed) |
//! | `midjourney-proxy` | [`MidjourneyProxy`] | `id` | every change | none | never retried | none (one attempt) |
//!
//! # Writing a profile
//!
//! A profile is a type that implements [`Profile`]; only
//! [`name`](Profile::name) and [`parse`](Profile::parse) are required.
//! Build the event with [`TaskEvent::builder`].
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::HeaderMap;
//! use taskhook::event::PayloadError;
//! use taskhook::provider::{Events, Profile};
//! use taskhook::{TaskEvent, TaskStatus};
//!
//! /// `{"job":"j1","state":"done","file":"https://..."}`
//! #[derive(Debug)]
//! struct Acme;
//!
//! impl Profile for Acme {
//!     fn name(&self) -> &str {
//!         "acme"
//!     }
//!
//!     fn parse(&self, body: &Bytes, _headers: &HeaderMap) -> Result<TaskEvent, PayloadError> {
//!         let json: serde_json::Value =
//!             serde_json::from_slice(body).map_err(|e| PayloadError::from_json(e, body))?;
//!         let id = json["job"].as_str().ok_or_else(|| PayloadError::shape("no `job`"))?;
//!         let raw = json["state"].as_str().unwrap_or_default();
//!         let status = match raw {
//!             "done" => TaskStatus::Completed,
//!             "error" => TaskStatus::Failed,
//!             _ => TaskStatus::Processing,
//!         };
//!         let mut event = TaskEvent::builder(id).status(status).raw_status(raw);
//!         if let Some(url) = json["file"].as_str() {
//!             event = event.output("videos", url, None);
//!         }
//!         event.build()
//!     }
//!
//!     fn events(&self) -> Events {
//!         Events::EveryChange
//!     }
//!
//!     fn retry_horizon(&self) -> Duration {
//!         Duration::from_secs(3600)
//!     }
//! }
//!
//! let body = Bytes::from_static(br#"{"job":"j1","state":"done","file":"https://cdn.example/v.mp4"}"#);
//! let event = Acme.parse(&body, &HeaderMap::new())?;
//! assert_eq!((event.id(), event.raw_status()), ("j1", Some("done")));
//! assert!(event.is_final());
//! # Ok::<(), PayloadError>(())
//! ```

mod apimart;
mod fal;
mod json;
mod kie;
mod kling;
mod midjourney_proxy;
mod openai;
mod replicate;
mod standard_webhooks;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;

use crate::event::PayloadError;
use crate::TaskEvent;

pub use self::apimart::Apimart;
pub use self::fal::Fal;
pub use self::kie::Kie;
pub use self::kling::Kling;
pub use self::midjourney_proxy::MidjourneyProxy;
pub use self::openai::OpenAi;
pub use self::replicate::Replicate;
pub use self::standard_webhooks::StandardWebhooks;

/// The shortest dedup time to live a profile defaults to: the dedup stores'
/// default (24 h).
const MIN_TIME_TO_LIVE: Duration = Duration::from_secs(24 * 60 * 60);

/// One provider's contract: how its pushes read, and how it behaves.
///
/// See the [module docs](self) for an example of a profile of one's own.
pub trait Profile: fmt::Debug + Send + Sync + 'static {
    /// The profile's name, as `--provider` takes it (`apimart`,
    /// `replicate`, ...).
    fn name(&self) -> &str;

    /// Reads one push (the whole body and the request headers) into the
    /// normalized event.
    ///
    /// # Errors
    ///
    /// A body that can never be this provider's event (not JSON, no task
    /// id, a shape the profile cannot read): the payload layer answers it
    /// `400`.
    fn parse(&self, body: &Bytes, headers: &HeaderMap) -> Result<TaskEvent, PayloadError>;

    /// Which events the provider pushes per task (default: the final state
    /// only).
    fn events(&self) -> Events {
        Events::FinalOnly
    }

    /// How the provider's pushes are authenticated (default: not at all).
    fn authenticity(&self) -> Authenticity {
        Authenticity::None
    }

    /// What a `4xx` answer means to the provider (default: it gives up).
    fn client_errors(&self) -> ClientErrors {
        ClientErrors::GiveUp
    }

    /// How long after the first push the provider may still retry it.
    fn retry_horizon(&self) -> Duration;

    /// How long a done task id is remembered by default: past the retry
    /// horizon with a margin (twice it), and never less than 24 h.
    fn default_time_to_live(&self) -> Duration {
        self.retry_horizon().saturating_mul(2).max(MIN_TIME_TO_LIVE)
    }

    /// How far a signed push's timestamp may be from now (default 5
    /// minutes, the Standard Webhooks libraries' tolerance).
    fn signature_tolerance(&self) -> Duration {
        Duration::from_secs(5 * 60)
    }

    /// Whether a push carries only an id, so the full object must be
    /// fetched (with the refetch layer) before a handler can use it
    /// (default `false`).
    fn is_thin(&self) -> bool {
        false
    }
}

impl<P: Profile + ?Sized> Profile for Arc<P> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn parse(&self, body: &Bytes, headers: &HeaderMap) -> Result<TaskEvent, PayloadError> {
        (**self).parse(body, headers)
    }
    fn events(&self) -> Events {
        (**self).events()
    }
    fn authenticity(&self) -> Authenticity {
        (**self).authenticity()
    }
    fn client_errors(&self) -> ClientErrors {
        (**self).client_errors()
    }
    fn retry_horizon(&self) -> Duration {
        (**self).retry_horizon()
    }
    fn default_time_to_live(&self) -> Duration {
        (**self).default_time_to_live()
    }
    fn signature_tolerance(&self) -> Duration {
        (**self).signature_tolerance()
    }
    fn is_thin(&self) -> bool {
        (**self).is_thin()
    }
}

/// Which events a provider pushes for one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Events {
    /// One push, when the task reaches a final state (retried until
    /// answered).
    FinalOnly,
    /// A push at every change of state (queued, processing, progress, then
    /// the final state): dedup keys on the task and its state.
    EveryChange,
}

/// How a provider authenticates its pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Authenticity {
    /// Unsigned: protect the route with a secret path token, an IP
    /// allowlist or a refetch.
    None,
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp` and
    /// `webhook-signature` (`v1` HMAC with a `whsec_` secret, or `v1a`
    /// Ed25519 with a `whpk_` key).
    StandardWebhooks,
    /// fal's Ed25519 signature over the request id, user id, timestamp and
    /// the body's SHA-256, with keys from a JWKS URL.
    FalEd25519,
    /// KIE's HMAC-SHA256 over `taskId.timestamp` (the body is not covered:
    /// refetch to cover it).
    KieHmac,
    /// A static secret in a header the user chose (or a bearer token).
    HeaderSecret,
}

/// What a `4xx` answer means to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientErrors {
    /// It gives up on the push for good: a wrong `4xx` loses the result.
    GiveUp,
    /// It retries a `4xx` like a `5xx`.
    Retry,
    /// It never retries, whatever the answer.
    NeverRetries,
}

/// The profiles taskhook ships, by name (`apimart`, ...): what `--provider`
/// takes.
///
/// ```
/// let profile = taskhook::provider::by_name("apimart").expect("shipped");
/// assert_eq!(profile.name(), "apimart");
/// assert!(taskhook::provider::by_name("nobody").is_none());
/// ```
pub fn by_name(name: &str) -> Option<Arc<dyn Profile>> {
    let profile: Arc<dyn Profile> = match name {
        "apimart" => Arc::new(Apimart::new()),
        "replicate" => Arc::new(Replicate::new()),
        "fal" => Arc::new(Fal::new()),
        "openai" => Arc::new(OpenAi::new()),
        "standard-webhooks" => Arc::new(StandardWebhooks::new()),
        "kie" => Arc::new(Kie::new()),
        "kling" => Arc::new(Kling::new()),
        "midjourney-proxy" => Arc::new(MidjourneyProxy::new()),
        _ => return None,
    };
    Some(profile)
}

/// The names [`by_name`] knows, in the order the README's table lists them.
pub const NAMES: &[&str] = &[
    "apimart",
    "replicate",
    "fal",
    "openai",
    "standard-webhooks",
    "kie",
    "kling",
    "midjourney-proxy",
];
