use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// The callback body exactly as received, put in the request extensions by
/// the payload layer next to the parsed [`TaskEvent`](crate::TaskEvent).
///
/// Keep it to store, forward or re-verify the original bytes (a signature is
/// computed over them, not over a re-serialization). Cheap to clone.
///
/// ```
/// use bytes::Bytes;
/// use taskhook::RawPayload;
///
/// let raw = RawPayload::new(Bytes::from_static(b"{\"id\":\"t\"}"));
/// assert_eq!(&raw[..], b"{\"id\":\"t\"}");
/// assert_eq!(raw.into_bytes().len(), 10);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RawPayload(Bytes);

impl RawPayload {
    /// Wraps the raw body.
    pub fn new(bytes: Bytes) -> Self {
        Self(bytes)
    }

    /// The body.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// Consumes `self`, returning the body.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for RawPayload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for RawPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawPayload")
            .field("len", &self.0.len())
            .finish()
    }
}
