//! Workloads: task payloads built like the provider's samples, and the
//! duplicate pushes injected on top.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::payloads::{self, Built};
use super::provider::Provider;

/// The kinds of task a [`Workload`] generates, after the provider's samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskKind {
    /// A completed image task, `url` a string.
    ImageUrlString,
    /// A completed image task, `url` an array of two strings.
    ImageUrlArray,
    /// A completed video task (`url` an array, with `duration`, `width`,
    /// `height`).
    Video,
    /// A completed audio task (`url` an array).
    Audio,
    /// A failed task, `error` an object `{code, message, type}`.
    FailedErrorObject,
    /// A failed task, `error` a plain string.
    FailedErrorString,
    /// A cancelled task.
    Cancelled,
}

impl TaskKind {
    /// Every kind, in declaration order.
    pub const ALL: [TaskKind; 7] = [
        TaskKind::ImageUrlString,
        TaskKind::ImageUrlArray,
        TaskKind::Video,
        TaskKind::Audio,
        TaskKind::FailedErrorObject,
        TaskKind::FailedErrorString,
        TaskKind::Cancelled,
    ];

    /// The `status` its payload carries.
    pub fn status(self) -> &'static str {
        match self {
            TaskKind::FailedErrorObject | TaskKind::FailedErrorString => "failed",
            TaskKind::Cancelled => "cancelled",
            _ => "completed",
        }
    }

    fn index(self) -> usize {
        match self {
            TaskKind::ImageUrlString => 0,
            TaskKind::ImageUrlArray => 1,
            TaskKind::Video => 2,
            TaskKind::Audio => 3,
            TaskKind::FailedErrorObject => 4,
            TaskKind::FailedErrorString => 5,
            TaskKind::Cancelled => 6,
        }
    }
}

/// The share of each [`TaskKind`] in a workload, as relative weights.
///
/// The default: images 50 (half with `url` a string, half an array), video
/// 15, audio 10, failed 15 (10 with an error object, 5 with a string),
/// cancelled 10.
///
/// ```
/// use taskhook_sim::{Mix, TaskKind};
///
/// // Only videos.
/// let videos = Mix::only(TaskKind::Video);
/// // The default, without cancelled tasks and with more failures.
/// let mix = Mix::default()
///     .weight(TaskKind::Cancelled, 0)
///     .weight(TaskKind::FailedErrorString, 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 7],
}

impl Mix {
    /// Only tasks of `kind`.
    pub fn only(kind: TaskKind) -> Self {
        let mut weights = [0; 7];
        weights[kind.index()] = 1;
        Self { weights }
    }

    /// Sets the weight of `kind` (0 for none).
    ///
    /// ```
    /// use taskhook_sim::{Mix, TaskKind};
    ///
    /// let more_video = Mix::default().weight(TaskKind::Video, 50);
    /// ```
    #[must_use]
    pub fn weight(mut self, kind: TaskKind, weight: u32) -> Self {
        self.weights[kind.index()] = weight;
        self
    }

    /// Picks a kind; the default mix if every weight is zero.
    fn pick(&self, rng: &mut Rng) -> TaskKind {
        let weights = if self.weights.iter().all(|w| *w == 0) {
            Mix::default().weights
        } else {
            self.weights
        };
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut roll = rng.below(total);
        for (kind, weight) in TaskKind::ALL.iter().zip(weights) {
            if roll < u64::from(weight) {
                return *kind;
            }
            roll -= u64::from(weight);
        }
        TaskKind::ImageUrlString
    }
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            weights: [25, 25, 15, 10, 10, 5, 10],
        }
    }
}

/// An extra push of a task's payload, injected to test deduplication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DuplicateKind {
    /// Pushed again as soon as the first push has ended (delivered or not).
    Immediate,
    /// Pushed at the same moment as the first push, on another connection
    /// (as far as the simulator's in-flight limit allows).
    Concurrent,
    /// Pushed again this long after the first push started (scaled by the
    /// schedule's time factor), like a provider restart minutes later.
    After(Duration),
}

/// One event of a task: the body of one push, and its Standard Webhooks
/// `webhook-id` (the same for every attempt and every redelivery of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    payload: Bytes,
    webhook_id: String,
}

impl Event {
    /// The body pushed.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Its `webhook-id` (for Standard Webhooks signatures).
    pub fn webhook_id(&self) -> &str {
        &self.webhook_id
    }
}

/// The event index of a task's final event, for its `webhook-id`.
pub(crate) const FINAL_EVENT: &str = "final";

/// A `webhook-id` made from `parts`: `msg_` (OpenAI's: `wh_`) and 27
/// letters and digits of their SHA-256. The same parts give the same id.
pub(crate) fn derive_webhook_id(provider: Provider, parts: &[&[u8]]) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let prefix = if provider == Provider::OpenAi {
        "wh_"
    } else {
        "msg_"
    };
    let mut id = String::with_capacity(prefix.len() + 27);
    id.push_str(prefix);
    id.extend(
        digest
            .iter()
            .take(27)
            .map(|byte| char::from(ALPHABET[usize::from(*byte) % 62])),
    );
    id
}

/// The `webhook-id` of event `event` (`final`, or an intermediate's
/// index) of the task `task_id`.
fn event_webhook_id(provider: Provider, task_id: &str, event: &str) -> String {
    derive_webhook_id(provider, &[task_id.as_bytes(), event.as_bytes()])
}

/// One task to push: its id, its events (the intermediate ones, if its
/// provider pushes any, then the final one), and the duplicates to inject.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    id: String,
    provider: Provider,
    kind: Option<TaskKind>,
    payload: Bytes,
    webhook_id: String,
    urls: Vec<String>,
    duplicates: Vec<DuplicateKind>,
    intermediates: Vec<Event>,
    late: bool,
}

impl Task {
    /// A task whose payload is pushed exactly as given, never parsed: for
    /// bodies a receiver must refuse (malformed JSON, a missing id). It has
    /// no [`urls`](Self::urls).
    ///
    /// ```
    /// use taskhook_sim::Task;
    ///
    /// let broken = Task::new("task_broken", "{not json");
    /// assert_eq!(broken.payload().as_ref(), b"{not json");
    /// ```
    pub fn new(id: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        let id = id.into();
        Self {
            webhook_id: event_webhook_id(Provider::Apimart, &id, FINAL_EVENT),
            id,
            provider: Provider::Apimart,
            kind: None,
            payload: payload.into(),
            urls: Vec::new(),
            duplicates: Vec::new(),
            intermediates: Vec::new(),
            late: false,
        }
    }

    /// A task from a payload of your own (a sample file, an edge case): the
    /// task-status JSON, enveloped (`{"code":200,"data":{...}}`) or not. The
    /// id is `data.id`; the result URLs are every `url` (a string or an
    /// array of strings) of the media lists under `data.result`.
    ///
    /// ```
    /// use taskhook_sim::{DuplicateKind, Task};
    ///
    /// let task = Task::from_payload(r#"{"code":200,"data":{"id":"task_01","status":"completed"}}"#)?
    ///     .duplicate(DuplicateKind::Concurrent);
    /// assert_eq!(task.id(), "task_01");
    /// # Ok::<(), taskhook_sim::InvalidPayload>(())
    /// ```
    pub fn from_payload(payload: impl Into<Bytes>) -> Result<Self, InvalidPayload> {
        Self::from_provider_payload(Provider::Apimart, payload)
    }

    /// A task from a final body of `provider`'s of your own: the id is where
    /// the provider puts it (Replicate's `id`, fal's `request_id`, OpenAI's
    /// and Standard Webhooks' `data.id`, KIE's `data.taskId`, Kling's
    /// `task_id`, midjourney-proxy's `id`), the result URLs those of its
    /// shape (see [`Provider`]). Add intermediate events with
    /// [`intermediate`](Self::intermediate).
    ///
    /// ```
    /// use taskhook_sim::{Provider, Task};
    ///
    /// let body = r#"{"id":"ufawqhfynnddngldkgtslldrkq","status":"succeeded","output":["https://x.example/a.png"]}"#;
    /// let task = Task::from_provider_payload(Provider::Replicate, body)?;
    /// assert_eq!(task.id(), "ufawqhfynnddngldkgtslldrkq");
    /// assert_eq!(task.urls(), ["https://x.example/a.png"]);
    /// assert!(Task::from_provider_payload(Provider::Fal, body).is_err()); // no `request_id`
    /// # Ok::<(), taskhook_sim::InvalidPayload>(())
    /// ```
    pub fn from_provider_payload(
        provider: Provider,
        payload: impl Into<Bytes>,
    ) -> Result<Self, InvalidPayload> {
        let payload = payload.into();
        let json: Value = serde_json::from_slice(&payload)
            .map_err(|e| InvalidPayload(format!("not JSON: {e}")))?;
        let id = payloads::task_id_of(provider, &json).ok_or_else(|| {
            InvalidPayload(format!(
                "no task id ({}, a string)",
                payloads::id_path(provider)
            ))
        })?;
        Ok(Self {
            id: id.to_owned(),
            provider,
            kind: None,
            urls: payloads::urls_in(provider, &json),
            webhook_id: event_webhook_id(provider, id, FINAL_EVENT),
            payload,
            duplicates: Vec::new(),
            intermediates: Vec::new(),
            late: false,
        })
    }

    /// Adds an intermediate event, pushed (after those added before) ahead
    /// of the final one.
    ///
    /// ```
    /// use taskhook_sim::{Provider, Task};
    ///
    /// let task = Task::from_provider_payload(Provider::Kling, r#"{"task_id":"t1","task_status":"succeed"}"#)?
    ///     .intermediate(r#"{"task_id":"t1","task_status":"submitted"}"#)
    ///     .intermediate(r#"{"task_id":"t1","task_status":"processing"}"#);
    /// assert_eq!(task.intermediates().len(), 2);
    /// # Ok::<(), taskhook_sim::InvalidPayload>(())
    /// ```
    #[must_use]
    pub fn intermediate(mut self, payload: impl Into<Bytes>) -> Self {
        let n = self.intermediates.len().to_string();
        self.intermediates.push(Event {
            webhook_id: event_webhook_id(self.provider, &self.id, &n),
            payload: payload.into(),
        });
        self
    }

    /// Pushes the last intermediate event again right after the final
    /// event's first push ends (a regression the receiver must ignore;
    /// recorded as [`PushKind::Late`](crate::PushKind::Late)). Nothing
    /// happens for a task without intermediate events.
    ///
    /// ```
    /// use taskhook_sim::{Provider, Task};
    ///
    /// let task = Task::from_provider_payload(Provider::Kling, r#"{"task_id":"t1","task_status":"succeed"}"#)?
    ///     .intermediate(r#"{"task_id":"t1","task_status":"processing"}"#)
    ///     .late_intermediate();
    /// assert!(task.has_late_intermediate());
    /// # Ok::<(), taskhook_sim::InvalidPayload>(())
    /// ```
    #[must_use]
    pub fn late_intermediate(mut self) -> Self {
        self.late = true;
        self
    }

    /// Adds a duplicate push of this task.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhook_sim::{DuplicateKind, Task};
    ///
    /// let task = Task::new("task_01", "{}")
    ///     .duplicate(DuplicateKind::Immediate)
    ///     .duplicate(DuplicateKind::After(Duration::from_secs(300)));
    /// assert_eq!(task.duplicates().len(), 2);
    /// ```
    #[must_use]
    pub fn duplicate(mut self, kind: DuplicateKind) -> Self {
        self.duplicates.push(kind);
        self
    }

    /// The task id: the one a receiver dedups on, where the provider puts
    /// it (APIMart's `data.id`, Replicate's `id`, fal's `request_id`, ...:
    /// see [`Task::from_provider_payload`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The provider whose body this is.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The final event's `webhook-id` (for Standard Webhooks signatures; its
    /// duplicates carry the same).
    pub fn webhook_id(&self) -> &str {
        &self.webhook_id
    }

    /// The intermediate events, in the order they are pushed (before the
    /// final one).
    pub fn intermediates(&self) -> &[Event] {
        &self.intermediates
    }

    /// Whether the last intermediate event is pushed again after the final
    /// one ([`late_intermediate`](Self::late_intermediate)).
    pub fn has_late_intermediate(&self) -> bool {
        self.late && !self.intermediates.is_empty()
    }

    /// The generated kind; `None` for [`Task::new`] and [`Task::from_payload`].
    pub fn kind(&self) -> Option<TaskKind> {
        self.kind
    }

    /// The final event's payload (APIMart's: the enveloped task-status
    /// JSON).
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Every result URL in the final payload, of any media kind, in order:
    /// what a receiver should end up with (none for a failed or cancelled
    /// task, nor for OpenAI's thin events).
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The duplicate pushes to inject.
    pub fn duplicates(&self) -> &[DuplicateKind] {
        &self.duplicates
    }
}

/// A reproducible set of tasks: kinds drawn from a [`Mix`], ids unique
/// (APIMart's: `task_` + 26 ULID-like characters; each provider's in its
/// own form), duplicates and late intermediate events drawn with the
/// configured probabilities, all from one seed.
///
/// The same seed gives the same tasks, ids included (so two runs with one
/// seed against one receiver look like duplicates to it: change the seed).
/// [`generate`](Self::generate) builds APIMart's bodies,
/// [`generate_for`](Self::generate_for) any [`Provider`]'s;
/// [`Simulator::run`](crate::Simulator::run) builds its provider's.
///
/// ```
/// use std::time::Duration;
/// use taskhook_sim::Workload;
///
/// let workload = Workload::new(1000)
///     .seed(7)
///     .immediate_duplicates(0.02)
///     .concurrent_duplicates(0.01)
///     .later_duplicates(0.01, Duration::from_secs(300));
/// let tasks = workload.generate();
/// assert_eq!(tasks.len(), 1000);
/// assert_eq!(tasks, workload.generate());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    tasks: usize,
    seed: u64,
    mix: Mix,
    immediate: f64,
    concurrent: f64,
    later: f64,
    later_after: Duration,
    late: f64,
}

/// Unix seconds the generated tasks are created from (2025-12-06).
pub(crate) const BASE_UNIX_SECS: i64 = 1_765_000_000;

impl Workload {
    /// `tasks` tasks with the default mix, seed 0 and no duplicates.
    pub fn new(tasks: usize) -> Self {
        Self {
            tasks,
            seed: 0,
            mix: Mix::default(),
            immediate: 0.0,
            concurrent: 0.0,
            later: 0.0,
            later_after: Duration::from_secs(300),
            late: 0.0,
        }
    }

    /// Sets the seed of the generator.
    ///
    /// ```
    /// use taskhook_sim::Workload;
    ///
    /// assert_ne!(Workload::new(5).seed(1).generate(), Workload::new(5).seed(2).generate());
    /// ```
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the share of each kind of task.
    ///
    /// ```
    /// use taskhook_sim::{Mix, TaskKind, Workload};
    ///
    /// let workload = Workload::new(10).mix(Mix::only(TaskKind::Audio));
    /// assert!(workload.generate().iter().all(|t| t.kind() == Some(TaskKind::Audio)));
    /// ```
    #[must_use]
    pub fn mix(mut self, mix: Mix) -> Self {
        self.mix = mix;
        self
    }

    /// Sets the probability (clamped to 0..=1) that a task is pushed again
    /// right after its first push ends.
    ///
    /// ```
    /// use taskhook_sim::Workload;
    ///
    /// let every_task_twice = Workload::new(10).immediate_duplicates(1.0);
    /// ```
    #[must_use]
    pub fn immediate_duplicates(mut self, probability: f64) -> Self {
        self.immediate = clamp_probability(probability);
        self
    }

    /// Sets the probability (clamped to 0..=1) that a task is pushed twice
    /// at the same moment.
    ///
    /// ```
    /// use taskhook_sim::Workload;
    ///
    /// let workload = Workload::new(10).concurrent_duplicates(0.5);
    /// ```
    #[must_use]
    pub fn concurrent_duplicates(mut self, probability: f64) -> Self {
        self.concurrent = clamp_probability(probability);
        self
    }

    /// Sets the probability (clamped to 0..=1) that a task is pushed again
    /// `after` its first push started (scaled by the time factor).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskhook_sim::Workload;
    ///
    /// let workload = Workload::new(10).later_duplicates(0.1, Duration::from_secs(600));
    /// ```
    #[must_use]
    pub fn later_duplicates(mut self, probability: f64, after: Duration) -> Self {
        self.later = clamp_probability(probability);
        self.later_after = after;
        self
    }

    /// Sets the probability (clamped to 0..=1) that a task pushes its last
    /// intermediate event again after its final one ([`Task::late_intermediate`]).
    /// Only providers with intermediate events (Replicate, Kling,
    /// midjourney-proxy) have one to push; for the others it changes
    /// nothing.
    ///
    /// ```
    /// use taskhook_sim::{Provider, Workload};
    ///
    /// let tasks = Workload::new(10).late_intermediate(1.0).generate_for(Provider::Replicate);
    /// assert!(tasks.iter().all(|t| t.has_late_intermediate()));
    /// ```
    #[must_use]
    pub fn late_intermediate(mut self, probability: f64) -> Self {
        self.late = clamp_probability(probability);
        self
    }

    /// The number of tasks.
    pub fn len(&self) -> usize {
        self.tasks
    }

    /// Whether there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.tasks == 0
    }

    /// Generates the tasks, with APIMart's bodies.
    pub fn generate(&self) -> Vec<Task> {
        self.generate_for(Provider::Apimart)
    }

    /// Generates the tasks with `provider`'s bodies, ids and intermediate
    /// events (see [`Provider`]).
    ///
    /// ```
    /// use taskhook_sim::{Provider, Workload};
    ///
    /// let workload = Workload::new(5).seed(3);
    /// assert_eq!(workload.generate_for(Provider::Apimart), workload.generate());
    /// let kling = workload.generate_for(Provider::Kling);
    /// assert!(kling.iter().all(|t| t.intermediates().len() == 2));
    /// let body: serde_json::Value = serde_json::from_slice(kling[0].payload())?;
    /// assert_eq!(body["task_id"], kling[0].id());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn generate_for(&self, provider: Provider) -> Vec<Task> {
        let mut rng = Rng::new(self.seed);
        (0..self.tasks)
            .map(|index| {
                let kind = self.mix.pick(&mut rng);
                let built = payloads::build(provider, kind, index as u64, &mut rng);
                let mut duplicates = Vec::new();
                if rng.chance(self.immediate) {
                    duplicates.push(DuplicateKind::Immediate);
                }
                if rng.chance(self.concurrent) {
                    duplicates.push(DuplicateKind::Concurrent);
                }
                if rng.chance(self.later) {
                    duplicates.push(DuplicateKind::After(self.later_after));
                }
                // Drawn only where it can matter, so APIMart's workloads stay
                // as they were; always drawn there, so the probability does
                // not change the tasks.
                let late = provider.intermediate_events() > 0 && rng.chance(self.late);
                let Built {
                    id,
                    intermediates,
                    last,
                    urls,
                } = built;
                let intermediates = intermediates
                    .iter()
                    .enumerate()
                    .map(|(n, body)| Event {
                        payload: to_bytes(body),
                        webhook_id: event_webhook_id(provider, &id, &n.to_string()),
                    })
                    .collect();
                Task {
                    webhook_id: event_webhook_id(provider, &id, FINAL_EVENT),
                    id,
                    provider,
                    kind: Some(kind),
                    payload: to_bytes(&last),
                    urls,
                    duplicates,
                    intermediates,
                    late,
                }
            })
            .collect()
    }
}

fn to_bytes(json: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(json).unwrap_or_default())
}

fn clamp_probability(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

/// `task_` + [`crockford26`].
pub(crate) fn ulid_like(rng: &mut Rng, index: u64) -> String {
    format!("task_{}", crockford26(rng, index))
}

/// A ULID-like 26-character Crockford base32 string: 48 bits of
/// milliseconds (a fixed base plus the task index, so ids are unique and
/// sorted) and 80 random bits.
pub(crate) fn crockford26(rng: &mut Rng, index: u64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = (BASE_UNIX_SECS as u64 * 1000 + index) & ((1 << 48) - 1);
    let random =
        (u128::from(rng.next_u64()) << 16 | u128::from(rng.next_u64() & 0xffff)) & ((1 << 80) - 1);
    let value = u128::from(millis) << 80 | random;
    (0..26)
        .rev()
        .map(|i| char::from(ALPHABET[((value >> (5 * i)) & 31) as usize]))
        .collect()
}

/// An APIMart task of `kind`, the `index`th of its workload.
pub(crate) fn apimart(kind: TaskKind, index: u64, rng: &mut Rng) -> Built {
    let id = ulid_like(rng, index);
    let created = BASE_UNIX_SECS + index as i64;
    let (last, urls) = build(kind, &id, created, rng);
    Built {
        id,
        intermediates: Vec::new(),
        last,
        urls,
    }
}

/// The enveloped payload of a task of `kind`, and its result URLs.
fn build(kind: TaskKind, id: &str, created: i64, rng: &mut Rng) -> (Value, Vec<String>) {
    let actual = 10 + rng.below(200) as i64;
    let completed = created + actual;
    let expires_at = completed + 24 * 3600;
    let url = |media: &str, ext: &str, n: usize| {
        format!("https://upload.example.com/f/{media}/20251206/{id}_{n}.{ext}")
    };
    let (data, urls) = match kind {
        TaskKind::ImageUrlString => {
            let urls = vec![url("image", "png", 0)];
            let result = json!({"images": [{"url": urls[0], "expires_at": expires_at}]});
            (completed_data(id, created, completed, actual, result), urls)
        }
        TaskKind::ImageUrlArray => {
            let urls = vec![url("image", "png", 0), url("image", "png", 1)];
            let result = json!({"images": [{"url": urls, "expires_at": expires_at}]});
            (completed_data(id, created, completed, actual, result), urls)
        }
        TaskKind::Video => {
            let urls = vec![url("video", "mp4", 0)];
            let result = json!({"videos": [{
                "url": urls, "duration": 8, "width": 1280, "height": 720,
                "expires_at": expires_at,
            }]});
            (completed_data(id, created, completed, actual, result), urls)
        }
        TaskKind::Audio => {
            let urls = vec![url("audio", "mp3", 0)];
            let result = json!({"audios": [{"url": urls, "expires_at": expires_at}]});
            (completed_data(id, created, completed, actual, result), urls)
        }
        TaskKind::FailedErrorObject => (
            json!({
                "id": id, "status": "failed", "progress": 0, "created": created,
                "estimated_time": 120,
                "error": {"code": 400, "message": "content rejected", "type": "invalid_request_error"},
            }),
            Vec::new(),
        ),
        TaskKind::FailedErrorString => (
            json!({
                "id": id, "status": "failed", "progress": rng.below(100), "created": created,
                "estimated_time": 120, "error": "upstream model timeout",
            }),
            Vec::new(),
        ),
        TaskKind::Cancelled => (
            json!({
                "id": id, "status": "cancelled", "progress": rng.below(100), "created": created,
                "estimated_time": 120,
            }),
            Vec::new(),
        ),
    };
    (json!({"code": 200, "data": data}), urls)
}

fn completed_data(id: &str, created: i64, completed: i64, actual: i64, result: Value) -> Value {
    json!({
        "id": id, "status": "completed", "progress": 100, "result": result,
        "created": created, "completed": completed,
        "estimated_time": 60, "actual_time": actual,
    })
}

/// SplitMix64: tiny, fast, and good enough to draw a reproducible workload.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 if `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
        }
    }

    /// `true` with probability `p` (0..=1).
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        // 53 random bits as a float in [0, 1).
        let x = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        x < p
    }
}

/// A payload [`Task::from_payload`] (or [`Task::from_provider_payload`])
/// could not read: not JSON, or without a task id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPayload(String);

impl fmt::Display for InvalidPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid task payload: {}", self.0)
    }
}

impl std::error::Error for InvalidPayload {}
