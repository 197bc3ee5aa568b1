//! How the payload layer reads a body: the default shape, or a profile.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;

use crate::event::PayloadError;
use crate::provider::Profile;
use crate::TaskEvent;

/// The parser of one payload layer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parse {
    /// For the default shape: the whole event at once.
    pub(crate) in_full: bool,
    /// A provider profile, instead of the default shape.
    pub(crate) profile: Option<Arc<dyn Profile>>,
}

impl Parse {
    pub(crate) fn parse(
        &self,
        body: &Bytes,
        headers: &HeaderMap,
    ) -> Result<TaskEvent, PayloadError> {
        match &self.profile {
            Some(profile) => profile.parse(body, headers),
            None if self.in_full => TaskEvent::from_bytes_in_full(body.clone()),
            None => TaskEvent::from_bytes(body.clone()),
        }
    }
}
