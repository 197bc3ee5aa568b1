//! Reading Redis replies: stream entries into [`Entry`]s and
//! [`DeadLetter`]s.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::StatusCode;
use redis::Value;

use crate::backend::redis::RedisError;
use crate::fast_ack::journal::{Entry, JournalError, Record};
use crate::fast_ack::{DeadLetter, Failure};

pub(super) fn string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn bytes(value: Option<&Value>) -> Option<Bytes> {
    match value? {
        Value::BulkString(bytes) => Some(Bytes::copy_from_slice(bytes)),
        Value::SimpleString(text) => Some(Bytes::copy_from_slice(text.as_bytes())),
        _ => None,
    }
}

/// The entries of an `XREADGROUP` reply for one stream (RESP2: an array of
/// `[stream, entries]`; nil when there are none).
pub(super) fn stream_entries(reply: Value) -> Result<Vec<Value>, RedisError> {
    match reply {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => {
            let Some(Value::Array(stream)) = streams.into_iter().next() else {
                return Ok(Vec::new());
            };
            match stream.into_iter().nth(1) {
                Some(Value::Array(entries)) => Ok(entries),
                _ => Ok(Vec::new()),
            }
        }
        Value::Map(streams) => match streams.into_iter().next() {
            Some((_, Value::Array(entries))) => Ok(entries),
            _ => Ok(Vec::new()),
        },
        _ => Err(RedisError::reply("XREADGROUP answered an unknown shape")),
    }
}

pub(super) fn entry_id(item: &Value) -> Result<String, RedisError> {
    match item {
        Value::Array(parts) => {
            string(parts.first()).ok_or_else(|| RedisError::reply("stream entry without an id"))
        }
        _ => Err(RedisError::reply("stream entry is not an array")),
    }
}

fn seq_of(id: &str) -> Result<u64, RedisError> {
    id.split('-')
        .next()
        .and_then(|seq| seq.parse().ok())
        .ok_or_else(|| RedisError::reply(format!("stream id {id:?} is not ours")))
}

/// The fields of a stream entry `[id, [field, value, ..]]`, by name.
fn field<'a>(item: &'a Value, name: &str) -> Option<&'a Value> {
    let Value::Array(parts) = item else {
        return None;
    };
    let Some(Value::Array(fields)) = parts.get(1) else {
        return None;
    };
    fields
        .chunks(2)
        .find(|pair| string(pair.first()).as_deref() == Some(name))
        .and_then(|pair| pair.get(1))
}

fn record_of(item: &Value) -> Result<Record, RedisError> {
    let task = string(field(item, "task")).filter(|task| !task.is_empty());
    let body = bytes(field(item, "body"))
        .ok_or_else(|| RedisError::reply("stream entry without a body"))?;
    Ok(Record::new(task.map(Arc::from), body))
}

pub(super) fn parse_entry(item: &Value) -> Result<Entry, RedisError> {
    let seq = seq_of(&entry_id(item)?)?;
    Ok(record_of(item)?.into_entry(seq))
}

pub(super) fn parse_dead_letter(item: &Value) -> Result<DeadLetter, JournalError> {
    let corrupt = |reason: &str| JournalError::Corrupt {
        seq: None,
        reason: reason.to_owned(),
    };
    let seq: u64 = string(field(item, "seq"))
        .and_then(|seq| seq.parse().ok())
        .ok_or_else(|| corrupt("dead letter without a sequence number"))?;
    let entry = record_of(item)
        .map_err(|error| corrupt(&error.to_string()))?
        .into_entry(seq);
    let reason = string(field(item, "reason")).unwrap_or_default();
    let failure = match string(field(item, "kind")).as_deref() {
        Some("status") => {
            let (code, body) = reason.split_once(' ').unwrap_or((&reason, ""));
            let status = code
                .parse::<u16>()
                .ok()
                .and_then(|code| StatusCode::from_u16(code).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Failure::status(status, body)
        }
        Some("panic") => Failure::Panic(reason),
        _ => Failure::Error(reason),
    };
    let attempts = string(field(item, "attempts"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let at = string(field(item, "at"))
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or_default();
    DeadLetter::new(entry, failure, attempts, UNIX_EPOCH + at)
}
