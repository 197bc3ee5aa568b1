//! The providers the simulator can play: whose bodies it sends, how many
//! events per task, its retry schedule and what a `4xx` means to it.

use std::fmt;
use std::str::FromStr;

use super::delivery::ClientErrors;

/// An async-task API whose sending side the simulator plays.
///
/// The provider decides what a [`Workload`](crate::Workload) generates
/// ([`Workload::generate_for`](crate::Workload::generate_for)): the body
/// shape, the task id a receiver dedups on ([`Task::id`](crate::Task::id)),
/// the intermediate events pushed before the final one; and how a
/// [`Simulator`](crate::Simulator) delivers them
/// ([`Schedule::for_provider`](crate::Schedule::for_provider): timeout,
/// retries, what a `4xx` means). Signatures are configured on their own
/// ([`Signing`](crate::Signing)), since every provider's are optional or
/// per account.
///
/// [`Apimart`](Provider::Apimart) is the default, and everything the
/// simulator did before it knew other providers is what it does for
/// APIMart.
///
/// # What each provider sends
///
/// All values are invented (URLs on `example.com` hosts); the shapes follow
/// the providers' documented bodies.
///
/// | Provider | Body | Task id | Events per task |
/// |---|---|---|---|
/// | `apimart` | `{code, data:{id, status, result.images/videos/audios[].url, ...}}` | `data.id` | final |
/// | `replicate` | the Prediction: `{id, version, status, input, output, error, logs, created_at, started_at, completed_at, urls, metrics}` | `id` | `starting`, `processing` (with logs), final |
/// | `fal` | `{request_id, gateway_request_id, status: OK/ERROR, payload, error, payload_error}` | `request_id` | final |
/// | `openai` | thin: `{id: "evt_..", object: "event", type, created_at, data:{id: "resp_.."}}` | `data.id` | final |
/// | `standard-webhooks` | generic: `{type: "task.succeeded"/.., timestamp, data:{id, status, output:[urls]}}` | `data.id` | final |
/// | `kie` | `{code: 200/501, msg, data:{taskId, state, info:{resultUrls}, ...}}` | `data.taskId` | final |
/// | `kling` | `{task_id, task_status, task_status_msg, created_at, updated_at, task_result}` | `task_id` | `submitted`, `processing`, final |
/// | `midjourney-proxy` | the Task: `{id, action: "IMAGINE", status, progress: "NN%", imageUrl, failReason, submitTime, startTime, finishTime, ...}` | `id` | `SUBMITTED`, `IN_PROGRESS` 30 %, `IN_PROGRESS` 60 %, final |
///
/// # How the task kinds map
///
/// Each [`TaskKind`](crate::TaskKind) becomes the provider's nearest
/// equivalent; where a provider has no such state or media, the nearest
/// one it has:
///
/// | Kind | replicate | fal | openai | standard-webhooks | kie | kling | midjourney-proxy |
/// |---|---|---|---|---|---|---|---|
/// | image, `url` a string | `succeeded`, `output` a URL string | `OK`, `payload.images` (one) | `response.completed` | `task.succeeded` | `code` 200, one URL | `succeed`, `task_result.images` (one) | `SUCCESS`, `imageUrl` |
/// | image, `url` an array | `output` an array of two URLs | two images | `response.completed` | two URLs | two URLs | two images | `SUCCESS`, one grid `imageUrl` |
/// | video | `output` an `.mp4` URL string | `payload.video` | `response.completed` | one `.mp4` URL | one `.mp4` URL | `task_result.videos` | an image (`IMAGINE` makes images) |
/// | audio | `output` an `.mp3` URL string | `payload.audio` | `response.completed` | one `.mp3` URL | one `.mp3` URL | `task_result.audios` (shape unconfirmed) | an image |
/// | failed, error object | `failed`, `error` a string | `ERROR`, `payload.detail` (a validation error) | `response.failed` | `task.failed`, `data.error` an object | `code` 501 | `failed` | `FAILURE`, `failReason` |
/// | failed, error string | `failed`, `error` a string | `ERROR`, `payload` null | `response.failed` | `task.failed`, `data.error` a string | `code` 501 | `failed` | `FAILURE` |
/// | cancelled | `canceled` | `ERROR` (fal documents no cancelled state) | `response.cancelled` | `task.cancelled` | `code` 501 (no cancelled state) | `failed` (no cancelled state) | `FAILURE` (no cancelled state) |
///
/// OpenAI's events are thin (the result is fetched), so an OpenAI task has
/// no [`urls`](crate::Task::urls). Failed and cancelled tasks of a
/// multi-event provider push their intermediate events too.
///
/// ```
/// use taskhook_sim::Provider;
///
/// let provider = Provider::from_name("replicate").expect("known");
/// assert_eq!(provider.name(), "replicate");
/// assert_eq!(provider.intermediate_events(), 2);
/// assert_eq!(Provider::default(), Provider::Apimart);
/// assert!(Provider::ALL.iter().all(|p| Provider::from_name(p.name()) == Some(*p)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Provider {
    /// APIMart: the final state only, unsigned; retries 10/30/60 s, a `4xx`
    /// gives up.
    #[default]
    Apimart,
    /// Replicate: the Prediction at `starting`, `processing` and the final
    /// state; Standard Webhooks HMAC; only the final event is retried, on a
    /// `4xx` too, for about a minute.
    Replicate,
    /// fal.ai: the final result; Ed25519 signatures with keys from a JWKS;
    /// 10 retries within 2 h.
    Fal,
    /// OpenAI: thin events (`response.completed`, ...); Standard Webhooks;
    /// any non-`2xx` retried for up to 72 h.
    OpenAi,
    /// A generic sender following the Standard Webhooks spec: its payload
    /// structure (`type`, `timestamp`, `data`) and its example retry
    /// schedule (about three days).
    StandardWebhooks,
    /// KIE.ai: success or failure, HMAC over `taskId.timestamp` (not the
    /// body); a 15 s timeout.
    Kie,
    /// Kling: every status change (`submitted`, `processing`, the final
    /// state), unsigned.
    Kling,
    /// midjourney-proxy and its clones: every status and progress change,
    /// unsigned, one attempt and never a retry.
    MidjourneyProxy,
}

impl Provider {
    /// Every provider, [`Apimart`](Provider::Apimart) first.
    pub const ALL: [Provider; 8] = [
        Provider::Apimart,
        Provider::Replicate,
        Provider::Fal,
        Provider::OpenAi,
        Provider::StandardWebhooks,
        Provider::Kie,
        Provider::Kling,
        Provider::MidjourneyProxy,
    ];

    /// The provider's name: `apimart`, `replicate`, `fal`, `openai`,
    /// `standard-webhooks`, `kie`, `kling`, `midjourney-proxy` (taskhook's
    /// profile names).
    ///
    /// ```
    /// use taskhook_sim::Provider;
    ///
    /// assert_eq!(Provider::MidjourneyProxy.name(), "midjourney-proxy");
    /// assert_eq!(Provider::OpenAi.to_string(), "openai");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Provider::Apimart => "apimart",
            Provider::Replicate => "replicate",
            Provider::Fal => "fal",
            Provider::OpenAi => "openai",
            Provider::StandardWebhooks => "standard-webhooks",
            Provider::Kie => "kie",
            Provider::Kling => "kling",
            Provider::MidjourneyProxy => "midjourney-proxy",
        }
    }

    /// The provider with this [`name`](Self::name) (ASCII case ignored);
    /// `None` for a name it does not know.
    ///
    /// ```
    /// use taskhook_sim::Provider;
    ///
    /// assert_eq!(Provider::from_name("Standard-Webhooks"), Some(Provider::StandardWebhooks));
    /// assert_eq!(Provider::from_name("nobody"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|provider| provider.name().eq_ignore_ascii_case(name))
    }

    /// How many intermediate events each task pushes before its final one
    /// (0 for a provider that pushes only the final state).
    ///
    /// ```
    /// use taskhook_sim::Provider;
    ///
    /// assert_eq!(Provider::Apimart.intermediate_events(), 0);
    /// assert_eq!(Provider::Kling.intermediate_events(), 2);
    /// assert_eq!(Provider::MidjourneyProxy.intermediate_events(), 3);
    /// ```
    pub fn intermediate_events(self) -> usize {
        match self {
            Provider::Replicate | Provider::Kling => 2,
            Provider::MidjourneyProxy => 3,
            Provider::Apimart
            | Provider::Fal
            | Provider::OpenAi
            | Provider::StandardWebhooks
            | Provider::Kie => 0,
        }
    }

    /// What a `4xx` answer means to the provider (see
    /// [`Schedule::for_provider`](crate::Schedule::for_provider) for where
    /// the docs are silent).
    ///
    /// ```
    /// use taskhook_sim::{ClientErrors, Provider};
    ///
    /// assert_eq!(Provider::Apimart.client_errors(), ClientErrors::GiveUp);
    /// assert_eq!(Provider::Replicate.client_errors(), ClientErrors::Retry);
    /// ```
    pub fn client_errors(self) -> ClientErrors {
        match self {
            Provider::Replicate | Provider::Fal | Provider::OpenAi | Provider::StandardWebhooks => {
                ClientErrors::Retry
            }
            Provider::Apimart | Provider::Kie | Provider::Kling | Provider::MidjourneyProxy => {
                ClientErrors::GiveUp
            }
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Provider {
    type Err = UnknownProvider;

    /// [`Provider::from_name`], with an error naming the known providers.
    fn from_str(name: &str) -> Result<Self, UnknownProvider> {
        Self::from_name(name).ok_or_else(|| UnknownProvider(name.to_owned()))
    }
}

/// A provider name [`Provider`]'s `FromStr` does not know.
///
/// ```
/// use taskhook_sim::Provider;
///
/// let error = "acme".parse::<Provider>().unwrap_err();
/// assert!(error.to_string().contains("replicate"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProvider(String);

impl fmt::Display for UnknownProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown provider `{}` (known: ", self.0)?;
        for (i, provider) in Provider::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(provider.name())?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for UnknownProvider {}
