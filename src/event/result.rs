//! [`TaskResult`]: the `result` object of a completed task, its
//! [`MediaItem`]s and their [`ResultUrl`]s.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{Map, Value};

/// The `result` object of a completed task.
///
/// Every array of objects under `result` is a list of [`MediaItem`]s, keyed
/// by its media kind (`images`, `videos`, `audios`, or any other name); other
/// values are kept in [`TaskResult::extra`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskResult {
    // `pub(super)`: the parser (`de.rs`) fills them in.
    pub(super) media: Vec<(String, Vec<MediaItem>)>,
    pub(super) extra: Map<String, Value>,
}

impl TaskResult {
    /// The items of one media kind (`"images"`, `"videos"`, ...); empty when
    /// absent.
    pub fn media(&self, kind: &str) -> &[MediaItem] {
        self.media
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(&[], |(_, items)| items.as_slice())
    }

    /// `result.images`.
    pub fn images(&self) -> &[MediaItem] {
        self.media("images")
    }

    /// `result.videos`.
    pub fn videos(&self) -> &[MediaItem] {
        self.media("videos")
    }

    /// `result.audios`.
    pub fn audios(&self) -> &[MediaItem] {
        self.media("audios")
    }

    /// Every media kind with its items, in document order.
    pub fn media_kinds(&self) -> impl Iterator<Item = (&str, &[MediaItem])> + '_ {
        self.media.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Every URL of every media item, in document order.
    pub fn urls(&self) -> impl Iterator<Item = ResultUrl<'_>> + '_ {
        self.media.iter().flat_map(|(kind, items)| {
            items.iter().flat_map(move |item| {
                item.urls
                    .iter()
                    .map(move |url| ResultUrl { kind, url, item })
            })
        })
    }

    /// Values under `result` that are not lists of media items.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
}

impl Serialize for TaskResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.media.len() + self.extra.len()))?;
        for (kind, items) in &self.media {
            map.serialize_entry(kind, items)?;
        }
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// One media item of a result: its URLs, expiry and other fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaItem {
    // `pub(super)`: the parser (`de.rs`) fills them in.
    pub(super) urls: Vec<String>,
    pub(super) url_was_string: bool,
    pub(super) expires_at: Option<i64>,
    pub(super) extra: Map<String, Value>,
}

impl MediaItem {
    /// The item's URLs, whether the JSON had `url` as a string or an array.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// When the links expire, in Unix seconds: copy the files before then.
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }

    /// Another field of the item (`duration`, `width`, `seed`, ...).
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.extra.get(field)
    }

    /// `duration` in seconds, if it is a number.
    pub fn duration(&self) -> Option<f64> {
        self.get("duration").and_then(Value::as_f64)
    }

    /// `width` in pixels, if it is a non-negative integer.
    pub fn width(&self) -> Option<u64> {
        self.get("width").and_then(Value::as_u64)
    }

    /// `height` in pixels, if it is a non-negative integer.
    pub fn height(&self) -> Option<u64> {
        self.get("height").and_then(Value::as_u64)
    }

    /// Every field other than `url` and `expires_at`.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
}

impl Serialize for MediaItem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match (self.url_was_string, self.urls.as_slice()) {
            (true, [url]) => map.serialize_entry("url", url)?,
            (_, []) => {}
            (_, urls) => map.serialize_entry("url", urls)?,
        }
        if let Some(expires_at) = self.expires_at {
            map.serialize_entry("expires_at", &expires_at)?;
        }
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// One URL of a result, with the media kind and item it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct ResultUrl<'a> {
    kind: &'a str,
    url: &'a str,
    item: &'a MediaItem,
}

impl<'a> ResultUrl<'a> {
    /// The URL.
    pub fn url(&self) -> &'a str {
        self.url
    }

    /// The media kind: `"images"`, `"videos"`, `"audios"`, or another key of
    /// `result`.
    pub fn kind(&self) -> &'a str {
        self.kind
    }

    /// When the link expires, in Unix seconds.
    pub fn expires_at(&self) -> Option<i64> {
        self.item.expires_at
    }

    /// The media item the URL belongs to.
    pub fn item(&self) -> &'a MediaItem {
        self.item
    }
}
