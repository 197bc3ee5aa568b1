//! Deserialization of the task-status object, in two passes of one shape.
//!
//! - The *light* pass ([`Light`]) runs when a body arrives. It visits every
//!   value with `deserialize_any`, exactly as the full pass does, so it
//!   accepts exactly the bodies the full pass accepts (syntax, UTF-8, escapes,
//!   number ranges, nesting depth, the id rules); but it keeps only the id and
//!   the scalar fields ([`Scalars`]) and builds nothing else: strings stay
//!   borrowed and are dropped, objects and arrays are walked by [`Skip`].
//! - The *full* pass ([`Parsed`]) builds everything: typed fields are filled
//!   directly, and only the values kept untyped (unknown fields, fields of an
//!   unexpected JSON type) become [`serde_json::Value`]s. [`TaskEvent`] runs
//!   it once, on the first access that needs it.
//!
//! Both recognise the envelope on the fly: the top-level `data` object is
//! parsed as a task, every other top-level key as a field of a bare task, and
//! the end of the object decides which of the two the body was.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{Fields, IdError, MediaItem, Scalars, TaskError, TaskEvent, TaskResult, TaskStatus};

/// The whole body, before we know whether it was wrapped.
pub(super) struct Parsed {
    bare: Builder,
    data: Option<Shape<'static, Builder, Value>>,
}

impl Parsed {
    pub(super) fn into_fields(self) -> Result<Fields, IdError> {
        let Parsed { mut bare, data } = self;
        let task = match data {
            // The usual case: an envelope around the task object.
            Some(Shape::Map(task)) if matches!(bare.id, IdSlot::Missing) => {
                let mut envelope = bare.into_map();
                envelope.remove("data");
                let mut task = task;
                task.fields.envelope = Some(envelope);
                task
            }
            // A bare task that happens to have a `data` field: keep it.
            Some(other) => {
                bare.fields
                    .extra
                    .insert("data".to_owned(), other.into_value());
                bare
            }
            None => bare,
        };
        task.finish()
    }
}

impl<'de> Deserialize<'de> for Parsed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParsedVisitor;

        impl<'de> Visitor<'de> for ParsedVisitor {
            type Value = Parsed;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a task-status object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
                let mut bare = Builder::default();
                let mut data = None;
                while let Some(key) = map.next_key_seed(KeySeed)? {
                    if key == "data" {
                        let value: Shape<'de, Builder, Value> = map.next_value()?;
                        data = Some(value.into_owned());
                    } else {
                        bare.accept(key, &mut map)?;
                    }
                }
                Ok(Parsed { bare, data })
            }
        }

        deserializer.deserialize_map(ParsedVisitor)
    }
}

impl<'de> Deserialize<'de> for TaskEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Parsed::deserialize(deserializer)?
            .into_fields()
            .map(TaskEvent::from_fields)
            .map_err(de::Error::custom)
    }
}

/// The id as it was found.
#[derive(Debug, Default)]
enum IdSlot {
    #[default]
    Missing,
    String(String),
    NotString(Value),
}

/// A task object being filled.
#[derive(Debug, Default)]
struct Builder {
    id: IdSlot,
    fields: Fields,
}

impl Builder {
    /// Reads the value of `key` from `map` into the right field.
    fn accept<'de, A: MapAccess<'de>>(
        &mut self,
        key: Cow<'de, str>,
        map: &mut A,
    ) -> Result<(), A::Error> {
        let f = &mut self.fields;
        match &*key {
            "id" => {
                self.id = match map.next_value::<Scalar<'de>>()? {
                    Shape::Str(id) => IdSlot::String(id.into_owned()),
                    other => IdSlot::NotString(other.into_value()),
                }
            }
            "status" | "progress" | "created" | "completed" | "estimated_time" | "actual_time" => {
                let value = map.next_value::<Scalar<'de>>()?;
                if let Err(value) = f.scalars.accept(&key, value) {
                    keep(&mut f.extra, key, value.into_value());
                }
            }
            "result" => match map.next_value::<Shape<'de, TaskResult, Value>>()? {
                Shape::Map(result) => f.result = Some(result),
                other => keep(&mut f.extra, key, other.into_value()),
            },
            "error" => match map.next_value::<Shape<'de, TaskError, Value>>()? {
                Shape::Map(error) => f.error = Some(error),
                Shape::Str(message) => {
                    f.error = Some(TaskError {
                        message: Some(message.into_owned()),
                        plain: true,
                        ..TaskError::default()
                    })
                }
                Shape::Null => {}
                other => keep(&mut f.extra, key, other.into_value()),
            },
            "cost" => f.cost = Some(map.next_value()?),
            "credits_cost" => f.credits_cost = Some(map.next_value()?),
            _ => {
                let value = map.next_value()?;
                keep(&mut f.extra, key, value);
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Fields, IdError> {
        let id = match self.id {
            IdSlot::Missing => return Err(IdError::Missing),
            IdSlot::NotString(_) => return Err(IdError::NotString),
            IdSlot::String(id) => id,
        };
        IdError::check(&id)?;
        Ok(Fields { id, ..self.fields })
    }

    /// The object as JSON again (only for the rare envelope/bare ambiguity).
    fn into_map(self) -> Map<String, Value> {
        let mut map = match serde_json::to_value(&self.fields) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        match self.id {
            IdSlot::Missing => {}
            IdSlot::String(id) => {
                map.insert("id".to_owned(), Value::String(id));
            }
            IdSlot::NotString(id) => {
                map.insert("id".to_owned(), id);
            }
        }
        map
    }
}

fn keep(extra: &mut Map<String, Value>, key: Cow<'_, str>, value: Value) {
    extra.insert(key.into_owned(), value);
}

impl<'de> FromMap<'de> for Builder {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut builder = Builder::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            builder.accept(key, &mut map)?;
        }
        Ok(builder)
    }
}

impl From<Builder> for Value {
    fn from(builder: Builder) -> Value {
        Value::Object(builder.into_map())
    }
}

impl<'de> FromMap<'de> for TaskResult {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut result = TaskResult::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match map.next_value::<Shape<'de, Value, MediaList>>()? {
                Shape::Seq(MediaList::Items(items)) => {
                    result.media.push((key.into_owned(), items));
                }
                other => keep(&mut result.extra, key, other.into_value()),
            }
        }
        Ok(result)
    }
}

impl From<TaskResult> for Value {
    fn from(result: TaskResult) -> Value {
        serde_json::to_value(result).unwrap_or_default()
    }
}

/// An array under `result`: media items if every element is an object.
enum MediaList {
    Items(Vec<MediaItem>),
    Mixed(Vec<Value>),
}

impl<'de> FromSeq<'de> for MediaList {
    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
        while let Some(element) = seq.next_element::<Shape<'de, MediaItem, Value>>()? {
            match element {
                Shape::Map(item) => items.push(item),
                other => {
                    let mut mixed: Vec<Value> = items.into_iter().map(Value::from).collect();
                    mixed.push(other.into_value());
                    while let Some(value) = seq.next_element()? {
                        mixed.push(value);
                    }
                    return Ok(MediaList::Mixed(mixed));
                }
            }
        }
        Ok(MediaList::Items(items))
    }
}

impl From<MediaList> for Value {
    fn from(list: MediaList) -> Value {
        match list {
            MediaList::Items(items) => Value::Array(items.into_iter().map(Value::from).collect()),
            MediaList::Mixed(values) => Value::Array(values),
        }
    }
}

impl<'de> FromMap<'de> for MediaItem {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut item = MediaItem::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match &*key {
                "url" => match map.next_value::<Shape<'de, Value, UrlList>>()? {
                    Shape::Str(url) => {
                        item.urls = vec![url.into_owned()];
                        item.url_was_string = true;
                    }
                    Shape::Seq(UrlList::Urls(urls)) => {
                        item.urls = urls;
                        item.url_was_string = false;
                    }
                    Shape::Null => {}
                    other => keep(&mut item.extra, key, other.into_value()),
                },
                "expires_at" => {
                    let value = map.next_value::<Scalar<'de>>()?;
                    match value.as_i64() {
                        Some(at) => item.expires_at = Some(at),
                        None => keep(&mut item.extra, key, value.into_value()),
                    }
                }
                _ => {
                    let value = map.next_value()?;
                    keep(&mut item.extra, key, value);
                }
            }
        }
        Ok(item)
    }
}

impl From<MediaItem> for Value {
    fn from(item: MediaItem) -> Value {
        serde_json::to_value(item).unwrap_or_default()
    }
}

/// `url` as an array: strings only, or kept raw.
enum UrlList {
    Urls(Vec<String>),
    Mixed(Vec<Value>),
}

impl<'de> FromSeq<'de> for UrlList {
    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut urls = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
        while let Some(element) = seq.next_element::<Scalar<'de>>()? {
            match element {
                Shape::Str(url) => urls.push(url.into_owned()),
                other => {
                    let mut mixed: Vec<Value> = urls.into_iter().map(Value::String).collect();
                    mixed.push(other.into_value());
                    while let Some(value) = seq.next_element()? {
                        mixed.push(value);
                    }
                    return Ok(UrlList::Mixed(mixed));
                }
            }
        }
        Ok(UrlList::Urls(urls))
    }
}

impl From<UrlList> for Value {
    fn from(list: UrlList) -> Value {
        match list {
            UrlList::Urls(urls) => Value::Array(urls.into_iter().map(Value::String).collect()),
            UrlList::Mixed(values) => Value::Array(values),
        }
    }
}

impl<'de> FromMap<'de> for TaskError {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut error = TaskError::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match (&*key, map.next_value::<Scalar<'de>>()?) {
                ("message", Shape::Str(message)) => error.message = Some(message.into_owned()),
                ("type", Shape::Str(kind)) => error.kind = Some(kind.into_owned()),
                ("code", code) => error.code = Some(code.into_value()),
                (_, other) => keep(&mut error.extra, key, other.into_value()),
            }
        }
        Ok(error)
    }
}

impl From<TaskError> for Value {
    fn from(error: TaskError) -> Value {
        serde_json::to_value(error).unwrap_or_default()
    }
}

/// Builds `Self` from a JSON object being visited.
trait FromMap<'de>: Sized {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

/// Builds `Self` from a JSON array being visited.
trait FromSeq<'de>: Sized {
    fn from_seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error>;
}

impl<'de> FromMap<'de> for Value {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(map))
    }
}

impl<'de> FromSeq<'de> for Value {
    fn from_seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        Value::deserialize(de::value::SeqAccessDeserializer::new(seq))
    }
}

/// Any JSON value, with objects and arrays built by `M` and `S`.
///
/// Strings stay borrowed from the body where JSON allows it.
enum Shape<'de, M, S> {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(Cow<'de, str>),
    Map(M),
    Seq(S),
}

/// A value whose objects and arrays are kept as [`Value`].
type Scalar<'de> = Shape<'de, Value, Value>;

impl<M: Into<Value>, S: Into<Value>> Shape<'_, M, S> {
    fn into_value(self) -> Value {
        match self {
            Shape::Null => Value::Null,
            Shape::Bool(b) => Value::Bool(b),
            Shape::I64(n) => Value::from(n),
            Shape::U64(n) => Value::from(n),
            Shape::F64(n) => Value::from(n),
            Shape::Str(s) => Value::String(s.into_owned()),
            Shape::Map(m) => m.into(),
            Shape::Seq(s) => s.into(),
        }
    }
}

impl<M, S> Shape<'_, M, S> {
    /// An integer, or a float without a fractional part.
    fn as_i64(&self) -> Option<i64> {
        match *self {
            Shape::I64(n) => Some(n),
            Shape::U64(n) => i64::try_from(n).ok(),
            #[allow(clippy::cast_possible_truncation)]
            Shape::F64(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Some(n as i64),
            _ => None,
        }
    }

    fn into_owned(self) -> Shape<'static, M, S> {
        match self {
            Shape::Null => Shape::Null,
            Shape::Bool(b) => Shape::Bool(b),
            Shape::I64(n) => Shape::I64(n),
            Shape::U64(n) => Shape::U64(n),
            Shape::F64(n) => Shape::F64(n),
            Shape::Str(s) => Shape::Str(Cow::Owned(s.into_owned())),
            Shape::Map(m) => Shape::Map(m),
            Shape::Seq(s) => Shape::Seq(s),
        }
    }
}

impl<'de, M: FromMap<'de>, S: FromSeq<'de>> Deserialize<'de> for Shape<'de, M, S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor(PhantomData))
    }
}

struct ShapeVisitor<'de, M, S>(PhantomData<fn() -> Shape<'de, M, S>>);

impl<'de, M: FromMap<'de>, S: FromSeq<'de>> Visitor<'de> for ShapeVisitor<'de, M, S> {
    type Value = Shape<'de, M, S>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Shape::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Shape::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Shape::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Shape::I64(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Shape::U64(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Shape::F64(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Shape::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Shape::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Shape::Str(Cow::Owned(v)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        M::from_map(map).map(Shape::Map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        S::from_seq(seq).map(Shape::Seq)
    }
}

/// An object key, borrowed from the body when it has no escapes.
struct KeySeed;

impl<'de> de::DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

impl Scalars {
    /// Sets the scalar field `key` (`status`, `progress`, `created`,
    /// `completed`, `estimated_time` or `actual_time`) from `value`; gives the
    /// value back when its JSON type is not the field's (or `key` is another
    /// field), for the caller to keep it untyped.
    fn accept<'de, M, S>(
        &mut self,
        key: &str,
        value: Shape<'de, M, S>,
    ) -> Result<(), Shape<'de, M, S>> {
        match key {
            "status" => match value {
                Shape::Str(Cow::Borrowed(s)) => self.status = Some(TaskStatus::from(s)),
                Shape::Str(Cow::Owned(s)) => self.status = Some(TaskStatus::from(s)),
                other => return Err(other),
            },
            "progress" => match value.as_i64().and_then(|p| u8::try_from(p).ok()) {
                Some(p) if p <= 100 => self.progress = Some(p),
                _ => return Err(value),
            },
            _ => {
                let slot = match key {
                    "created" => &mut self.created,
                    "completed" => &mut self.completed,
                    "estimated_time" => &mut self.estimated_time,
                    "actual_time" => &mut self.actual_time,
                    _ => return Err(value),
                };
                match value.as_i64() {
                    Some(v) => *slot = Some(v),
                    None => return Err(value),
                }
            }
        }
        Ok(())
    }
}

/// The light pass over a whole body: the task id and the scalar fields,
/// with the envelope recognised as the full pass does.
pub(super) struct Light {
    bare: LightTask,
    /// The top-level `data`: `Some(task)` if it was an object.
    data: Option<Option<LightTask>>,
}

impl Light {
    /// The task's id (checked) and scalar fields.
    pub(super) fn into_head(self) -> Result<(Arc<str>, Scalars), IdError> {
        let task = match self.data {
            Some(Some(task)) if matches!(self.bare.id, LightId::Missing) => task,
            _ => self.bare,
        };
        let id = match task.id {
            LightId::Missing => return Err(IdError::Missing),
            LightId::NotString => return Err(IdError::NotString),
            LightId::String(id) => id,
        };
        IdError::check(&id)?;
        Ok((id, task.scalars))
    }
}

impl<'de> Deserialize<'de> for Light {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LightVisitor;

        impl<'de> Visitor<'de> for LightVisitor {
            type Value = Light;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a task-status object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Light, A::Error> {
                let mut bare = LightTask::default();
                let mut data = None;
                while let Some(key) = map.next_key_seed(KeySeed)? {
                    if key == "data" {
                        data = match map.next_value::<Shape<'de, LightTask, Skip>>()? {
                            Shape::Map(task) => Some(Some(task)),
                            _ => Some(None),
                        };
                    } else {
                        bare.accept(key, &mut map)?;
                    }
                }
                Ok(Light { bare, data })
            }
        }

        deserializer.deserialize_map(LightVisitor)
    }
}

/// The id as the light pass found it.
#[derive(Debug, Default)]
enum LightId {
    #[default]
    Missing,
    /// Shared as it is: the dedup key and fast-ack's job take a reference.
    String(Arc<str>),
    NotString,
}

/// A task object seen by the light pass.
#[derive(Debug, Default)]
struct LightTask {
    id: LightId,
    scalars: Scalars,
}

impl LightTask {
    /// Reads the value of `key`, keeping it only if it is the id or a
    /// scalar field; the same `deserialize_any` as [`Builder::accept`].
    fn accept<'de, A: MapAccess<'de>>(
        &mut self,
        key: Cow<'de, str>,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match &*key {
            "id" => {
                self.id = match map.next_value::<Shape<'de, Skip, Skip>>()? {
                    Shape::Str(id) => LightId::String(Arc::from(&*id)),
                    _ => LightId::NotString,
                }
            }
            "status" | "progress" | "created" | "completed" | "estimated_time" | "actual_time" => {
                let value = map.next_value::<Shape<'de, Skip, Skip>>()?;
                // A value of another type is kept by the full pass only.
                let _ = self.scalars.accept(&key, value);
            }
            _ => {
                map.next_value::<Skip>()?;
            }
        }
        Ok(())
    }
}

impl<'de> FromMap<'de> for LightTask {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut task = LightTask::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            task.accept(key, &mut map)?;
        }
        Ok(task)
    }
}

/// Any JSON value, visited with `deserialize_any` (so validated as the full
/// pass validates it: strings, escapes and numbers parsed) and dropped.
///
/// Unlike [`serde::de::IgnoredAny`], which lets `serde_json` skip values
/// without parsing them (and so accepts invalid UTF-8, lone surrogates and
/// out-of-range numbers inside them), this rejects exactly what building a
/// [`Value`] would reject.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Skip)
    }
}

impl<'de> FromMap<'de> for Skip {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_key::<Skip>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(Skip)
    }
}

impl<'de> FromSeq<'de> for Skip {
    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_none<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Skip, A::Error> {
        Skip::from_map(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Skip, A::Error> {
        Skip::from_seq(seq)
    }
}
