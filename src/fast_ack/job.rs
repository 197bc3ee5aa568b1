//! A queued event: the request data kept to rebuild a fresh request for each
//! attempt, and its encoding in the journal.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Uri, Version};

use super::journal::{Entry, JournalError, Record};
use crate::body::BufferedBody;
use crate::metrics::record::AttemptStart;
use crate::{RawPayload, TaskEvent};

/// Everything of a request but its body and extensions, and when it was
/// accepted: what the journal keeps. Shared by every attempt.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    /// When the layer accepted the request (journaled with it, so an
    /// attempt after a restart or a replay sees the original time).
    pub(crate) received_at: SystemTime,
}

/// One accepted event on its way through the queue.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) seq: u64,
    pub(crate) task_id: Option<Arc<str>>,
    /// The parsed event, when the body is one.
    pub(crate) event: Option<TaskEvent>,
    pub(crate) head: Arc<Head>,
    pub(crate) body: Bytes,
    /// Attempts made so far.
    pub(crate) attempts: u32,
    /// The span of the request that was accepted, the parent of every attempt.
    pub(crate) span: tracing::Span,
    /// When a worker took it for the current attempt (for the metrics).
    pub(crate) attempt_started: AttemptStart,
}

impl Job {
    /// A fresh request for the next attempt, made of what the journal keeps
    /// and nothing else, so that an attempt on an event accepted a moment
    /// ago and one on an event read back after a restart see the same
    /// request: method, URI, version, headers and body, with the
    /// [`TaskEvent`], the [`RawPayload`] and the [`Attempt`] in its
    /// extensions. The extensions of the accepted request (a router's path
    /// parameters, the peer address, whatever an outer layer added) are not
    /// journaled, so they are not passed on live either: a handler that
    /// needs them fails on its first attempt, not after a restart.
    pub(crate) fn request(&self) -> Request<BufferedBody> {
        let mut req = Request::new(BufferedBody::new(self.body.clone()));
        *req.method_mut() = self.head.method.clone();
        *req.uri_mut() = self.head.uri.clone();
        *req.version_mut() = self.head.version;
        *req.headers_mut() = self.head.headers.clone();
        let extensions = req.extensions_mut();
        if let Some(event) = &self.event {
            extensions.insert(event.clone());
        }
        extensions.insert(RawPayload::new(self.body.clone()));
        extensions.insert(Attempt {
            seq: self.seq,
            number: self.attempts,
            task_id: self.task_id.clone(),
            received_at: self.head.received_at,
        });
        req
    }

    /// The record appended to the journal for this request (encoded when
    /// the journal reads its bytes).
    pub(crate) fn record(&self) -> Record {
        Record::of_request(
            self.task_id.clone(),
            Arc::clone(&self.head),
            self.body.clone(),
        )
    }

    /// Rebuilds a job from a journal entry (after a restart, or a dead
    /// letter loaded from the journal); the [`TaskEvent`] is parsed again
    /// from the body.
    pub(crate) fn from_entry(entry: &Entry) -> Result<Self, JournalError> {
        let (head, body) = decode(entry.bytes())
            .map_err(|reason| JournalError::corrupt(Some(entry.seq()), reason))?;
        let mut task_id = entry.task_id_arc();
        let event = TaskEvent::from_slice(&body).ok();
        if let Some(event) = &event {
            task_id.get_or_insert_with(|| Arc::clone(event.shared_id()));
        }
        Ok(Self {
            seq: entry.seq(),
            task_id,
            event,
            head: Arc::new(head),
            body,
            attempts: 0,
            span: tracing::Span::none(),
            attempt_started: AttemptStart::default(),
        })
    }
}

impl Job {
    /// Reads the event again with `profile` (a job rebuilt from the journal
    /// parses the default shape).
    pub(crate) fn reparse(&mut self, profile: &dyn crate::provider::Profile) {
        self.event = profile.parse(&self.body, &self.head.headers).ok();
    }
}

#[cfg(test)]
impl Job {
    /// A job with an empty request, for the queue's unit tests.
    pub(crate) fn for_test(seq: u64) -> Self {
        Self {
            seq,
            task_id: None,
            event: None,
            head: Arc::new(Head {
                method: Method::POST,
                uri: Uri::from_static("/callback"),
                version: Version::HTTP_11,
                headers: HeaderMap::new(),
                received_at: SystemTime::now(),
            }),
            body: Bytes::new(),
            attempts: 0,
            span: tracing::Span::none(),
            attempt_started: AttemptStart::default(),
        }
    }
}

/// Which attempt on which event a request to the handler is: in the
/// extensions of every request the fast-ack workers send to the inner
/// service (live or replayed after a restart alike).
///
/// With the `axum` feature, extract it with `Extension<Attempt>`.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use taskhook::body::BufferedBody;
/// use taskhook::fast_ack::Attempt;
/// use tower::service_fn;
///
/// let handler = service_fn(|req: Request<BufferedBody>| async move {
///     if let Some(attempt) = req.extensions().get::<Attempt>() {
///         println!("event {} attempt {}", attempt.seq(), attempt.number());
///     }
///     Ok::<_, Infallible>(Response::new(String::new()))
/// });
/// # drop(handler);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    seq: u64,
    number: u32,
    task_id: Option<Arc<str>>,
    received_at: SystemTime,
}

impl Attempt {
    /// The journal sequence number of the event.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The attempt: `1` for the first, `2` for the first retry, and so on
    /// (a replayed dead letter starts again at `1`).
    pub fn number(&self) -> u32 {
        self.number
    }

    /// The task id, when the payload layer parsed one.
    pub fn task_id(&self) -> Option<&str> {
        self.task_id.as_deref()
    }

    /// When the layer accepted the event (answered it `202`), to the
    /// millisecond: journaled with the request, so every attempt, one after
    /// a restart and a replayed dead letter's included, sees the original
    /// time.
    ///
    /// (An entry of the journal format before this time was recorded
    /// carries none: for it, the time it was read back from the journal.)
    pub fn received_at(&self) -> SystemTime {
        self.received_at
    }
}

/// The format written: with the time of acceptance.
const MAGIC: &[u8; 4] = b"THJ2";
/// The format before it, still read: without the time of acceptance.
const MAGIC_V1: &[u8; 4] = b"THJ1";

/// `THJ2`, the time of acceptance (milliseconds since the Unix epoch, `u64`
/// little endian), then method, URI, version, headers and body, each
/// length-prefixed (`u32`, little endian). `THJ1` is the same without the
/// time.
pub(crate) fn encode(head: &Head, body: &Bytes) -> Bytes {
    let headers: usize = head
        .headers
        .iter()
        .map(|(k, v)| 8 + k.as_str().len() + v.len())
        .sum();
    let uri = head.uri.to_string();
    let mut buf = BytesMut::with_capacity(
        4 + 8 + 4 + head.method.as_str().len() + 4 + uri.len() + 1 + 4 + headers + 4 + body.len(),
    );
    buf.put_slice(MAGIC);
    buf.put_u64_le(unix_millis(head.received_at));
    put(&mut buf, head.method.as_str().as_bytes());
    put(&mut buf, uri.as_bytes());
    buf.put_u8(match head.version {
        Version::HTTP_09 => 0,
        Version::HTTP_10 => 1,
        Version::HTTP_2 => 3,
        Version::HTTP_3 => 4,
        _ => 2,
    });
    buf.put_u32_le(len32(head.headers.len()));
    for (name, value) in &head.headers {
        put(&mut buf, name.as_str().as_bytes());
        put(&mut buf, value.as_bytes());
    }
    put(&mut buf, body);
    buf.freeze()
}

/// Now, to the millisecond: the time of acceptance of a new event, as the
/// journal keeps it (so a live attempt sees what a replayed one will).
pub(crate) fn received_now() -> SystemTime {
    let now = SystemTime::now();
    let millis = Duration::from_millis(unix_millis(now));
    UNIX_EPOCH.checked_add(millis).unwrap_or(now)
}

/// Milliseconds since the Unix epoch (`0` before it, saturated far after).
fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn len32(len: usize) -> u32 {
    // Bodies are bounded by the payload layer far below 4 GiB.
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn put(buf: &mut BytesMut, data: &[u8]) {
    buf.put_u32_le(len32(data.len()));
    buf.put_slice(data);
}

fn decode(bytes: &Bytes) -> Result<(Head, Bytes), String> {
    let mut reader = Reader { bytes, pos: 0 };
    let magic = reader.take(4)?;
    let received_at = if magic[..] == MAGIC[..] {
        let b = reader.take(8)?;
        let millis = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        UNIX_EPOCH
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(|| "the time of acceptance is out of range".to_owned())?
    } else if magic[..] == MAGIC_V1[..] {
        SystemTime::now()
    } else {
        return Err("unknown entry format".into());
    };
    let method = Method::from_bytes(&reader.field()?).map_err(|e| e.to_string())?;
    let uri = Uri::from_maybe_shared(reader.field()?).map_err(|e| e.to_string())?;
    let version = match reader.take(1)?[0] {
        0 => Version::HTTP_09,
        1 => Version::HTTP_10,
        2 => Version::HTTP_11,
        3 => Version::HTTP_2,
        4 => Version::HTTP_3,
        other => return Err(format!("unknown HTTP version {other}")),
    };
    let count = reader.u32()? as usize;
    let mut headers = HeaderMap::with_capacity(count.min(256));
    for _ in 0..count {
        let name = HeaderName::from_bytes(&reader.field()?).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_maybe_shared(reader.field()?).map_err(|e| e.to_string())?;
        headers.append(name, value);
    }
    let body = reader.field()?;
    if reader.pos != bytes.len() {
        return Err("trailing bytes after the body".into());
    }
    Ok((
        Head {
            method,
            uri,
            version,
            headers,
            received_at,
        },
        body,
    ))
}

struct Reader<'a> {
    bytes: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<Bytes, String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| "entry is truncated".to_owned())?;
        let out = self.bytes.slice(self.pos..end);
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn field(&mut self) -> Result<Bytes, String> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> Head {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_bytes(b"\xffb").unwrap());
        Head {
            method: Method::POST,
            uri: "/hook/callback?x=1".parse().unwrap(),
            version: Version::HTTP_2,
            headers,
            received_at: UNIX_EPOCH + Duration::from_millis(1_766_361_600_123),
        }
    }

    fn job(task_id: Option<&str>, body: &Bytes) -> Job {
        Job {
            seq: 0,
            task_id: task_id.map(Arc::from),
            event: None,
            head: Arc::new(head()),
            body: body.clone(),
            attempts: 0,
            span: tracing::Span::none(),
            attempt_started: AttemptStart::default(),
        }
    }

    #[test]
    fn round_trip() {
        let body = Bytes::from_static(br#"{"id":"task_1","status":"completed"}"#);
        let record = job(Some("task_1"), &body).record();
        let job = Job::from_entry(&record.into_entry(7)).unwrap();
        assert_eq!(job.seq, 7);
        assert_eq!(job.task_id.as_deref(), Some("task_1"));
        let req = job.request();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri(), "/hook/callback?x=1");
        assert_eq!(req.version(), Version::HTTP_2);
        assert_eq!(req.headers().get_all("x-multi").iter().count(), 2);
        assert_eq!(req.extensions().get::<TaskEvent>().unwrap().id(), "task_1");
        assert_eq!(req.extensions().get::<RawPayload>().unwrap().bytes(), &body);
        let attempt = req.extensions().get::<Attempt>().unwrap();
        assert_eq!((attempt.seq(), attempt.task_id()), (7, Some("task_1")));
        assert_eq!(
            attempt.received_at(),
            UNIX_EPOCH + Duration::from_millis(1_766_361_600_123),
            "the time of acceptance is journaled"
        );
    }

    #[test]
    fn the_format_without_the_time_of_acceptance_is_still_read() {
        let body = b"{}";
        let mut v1 = b"THJ1".to_vec();
        for field in [&b"POST"[..], b"/callback"] {
            v1.extend_from_slice(&(field.len() as u32).to_le_bytes());
            v1.extend_from_slice(field);
        }
        v1.push(2);
        v1.extend_from_slice(&0u32.to_le_bytes());
        v1.extend_from_slice(&(body.len() as u32).to_le_bytes());
        v1.extend_from_slice(body);
        let before = SystemTime::now();
        let (head, decoded) = decode(&Bytes::from(v1)).unwrap();
        assert_eq!((head.method, decoded.as_ref()), (Method::POST, &body[..]));
        assert!(head.received_at >= before, "read back now");
    }

    #[test]
    fn received_now_is_whole_milliseconds() {
        let now = received_now();
        let since = now.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(since.subsec_nanos() % 1_000_000, 0);
        let mut head = head();
        head.received_at = now;
        let (decoded, _) = decode(&encode(&head, &Bytes::new())).unwrap();
        assert_eq!(decoded.received_at, now);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let body = Bytes::from_static(b"{}");
        let bytes = job(None, &body).record().bytes().clone();
        for len in 0..bytes.len() {
            assert!(decode(&bytes.slice(..len)).is_err(), "{len}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(decode(&Bytes::from(longer)).is_err());
    }

    #[test]
    fn a_record_encodes_its_request_once_on_first_read() {
        let body = Bytes::from_static(b"{}");
        let job = job(Some("task_1"), &body);
        let record = job.record();
        let bytes = record.bytes().clone();
        assert_eq!(bytes, encode(&job.head, &body));
        assert_eq!(record.bytes().as_ptr(), bytes.as_ptr(), "encoded once");
        let given = Record::new(Some(Arc::from("task_1")), bytes);
        assert_eq!(record, given);
        assert_eq!(record.clone().into_entry(3).bytes(), given.bytes());
    }
}
