//! How entries and dead letters are laid out in the redb tables, and how
//! redb's errors map to [`JournalError`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use http::StatusCode;
use redb::TableDefinition;

use crate::fast_ack::journal::{Entry, JournalError, Record};
use crate::fast_ack::{DeadLetter, Failure};

/// Pending entries by sequence number.
pub(super) const ENTRIES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("entries");
/// Dead letters by sequence number.
pub(super) const DEAD: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("dead_letters");
/// `next_seq` and the format version.
pub(super) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// Done dedup keys and their expiry (unix milliseconds).
pub(super) const DONE: TableDefinition<'_, &str, u64> = TableDefinition::new("done_ids");
/// The same keys by expiry, to purge the expired ones in order.
pub(super) const DONE_BY_EXPIRY: TableDefinition<'_, (u64, &str), ()> =
    TableDefinition::new("done_ids_by_expiry");
/// A table of the pending task ids that earlier versions kept (derived
/// from [`ENTRIES`]); the writer keeps them in memory now, and opening a
/// file deletes it.
pub(super) const PENDING_IDS: TableDefinition<'_, &str, u64> =
    TableDefinition::new("pending_task_ids");

pub(super) const NEXT_SEQ: &str = "next_seq";
pub(super) const FORMAT: &str = "format";
pub(super) const FORMAT_VERSION: u64 = 1;

const NO_TASK: u32 = u32::MAX;

/// `[u32 task id length, or u32::MAX for none][task id][record bytes]`.
pub(super) fn encode_record(record: &Record) -> Vec<u8> {
    let task = record.task_id().unwrap_or_default().as_bytes();
    let mut buf = Vec::with_capacity(4 + task.len() + record.bytes().len());
    match record.task_id() {
        Some(_) => buf.put_u32_le(len32(task.len())),
        None => buf.put_u32_le(NO_TASK),
    }
    buf.put_slice(task);
    buf.put_slice(record.bytes());
    buf
}

/// The task id of an entry stored as [`encode_record`] writes it, without
/// decoding the rest; `None` for an entry without one (or a value too
/// damaged to hold one: every entry is decoded in full on open).
pub(super) fn entry_task_id(bytes: &[u8]) -> Option<&str> {
    let mut reader = Reader { bytes, pos: 0 };
    let len = reader.u32().ok()?;
    if len == NO_TASK {
        return None;
    }
    std::str::from_utf8(reader.take(len as usize).ok()?).ok()
}

pub(super) fn decode_entry(seq: u64, bytes: &[u8]) -> Result<Entry, JournalError> {
    let mut reader = Reader { bytes, pos: 0 };
    let record =
        read_record(&mut reader).map_err(|reason| JournalError::corrupt(Some(seq), reason))?;
    Ok(record.into_entry(seq))
}

fn read_record(reader: &mut Reader<'_>) -> Result<Record, String> {
    let len = reader.u32()?;
    let task_id = if len == NO_TASK {
        None
    } else {
        let raw = reader.take(len as usize)?;
        let id = std::str::from_utf8(raw).map_err(|_| "task id is not UTF-8".to_owned())?;
        Some(Arc::<str>::from(id))
    };
    let rest = reader.rest();
    Ok(Record::new(task_id, Bytes::copy_from_slice(rest)))
}

const FAILURE_STATUS: u8 = 0;
const FAILURE_ERROR: u8 = 1;
const FAILURE_PANIC: u8 = 2;

/// `[u8 failure kind][u16 status][u32 len][message][u32 attempts]
/// [u64 secs][u32 nanos][entry as in ENTRIES]`.
pub(super) fn encode_dead_letter(letter: &DeadLetter) -> Vec<u8> {
    let (kind, status, message) = match letter.failure() {
        Failure::Status { status, body } => (FAILURE_STATUS, status.as_u16(), body.as_str()),
        Failure::Error(message) => (FAILURE_ERROR, 0, message.as_str()),
        Failure::Panic(message) => (FAILURE_PANIC, 0, message.as_str()),
    };
    let since = letter
        .failed_at()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let record = encode_record(letter.entry().record());
    let mut buf = BytesMut::with_capacity(1 + 2 + 4 + message.len() + 4 + 8 + 4 + record.len());
    buf.put_u8(kind);
    buf.put_u16_le(status);
    buf.put_u32_le(len32(message.len()));
    buf.put_slice(message.as_bytes());
    buf.put_u32_le(letter.attempts());
    buf.put_u64_le(since.as_secs());
    buf.put_u32_le(since.subsec_nanos());
    buf.put_slice(&record);
    buf.to_vec()
}

pub(super) fn decode_dead_letter(seq: u64, bytes: &[u8]) -> Result<DeadLetter, JournalError> {
    let corrupt = |reason: String| JournalError::corrupt(Some(seq), reason);
    let mut reader = Reader { bytes, pos: 0 };
    let kind = reader.take(1).map_err(corrupt)?[0];
    let status = reader.u16().map_err(corrupt)?;
    let len = reader.u32().map_err(corrupt)? as usize;
    let message = reader.take(len).map_err(corrupt)?;
    let message = String::from_utf8_lossy(message).into_owned();
    let failure = match kind {
        FAILURE_STATUS => {
            let status = StatusCode::from_u16(status).map_err(|e| corrupt(e.to_string()))?;
            Failure::status(status, message)
        }
        FAILURE_ERROR => Failure::Error(message),
        FAILURE_PANIC => Failure::Panic(message),
        other => return Err(corrupt(format!("unknown failure kind {other}"))),
    };
    let attempts = reader.u32().map_err(corrupt)?;
    let secs = reader.u64().map_err(corrupt)?;
    let nanos = reader.u32().map_err(corrupt)?;
    let failed_at = UNIX_EPOCH
        .checked_add(Duration::new(secs, nanos.min(999_999_999)))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let record = read_record(&mut reader).map_err(corrupt)?;
    DeadLetter::new(record.into_entry(seq), failure, attempts, failed_at)
}

fn len32(len: usize) -> u32 {
    // Task ids and messages are far below 4 GiB (the payload layer bounds
    // bodies); a longer one is cut, not wrapped.
    u32::try_from(len).unwrap_or(u32::MAX - 1)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| "value is truncated".to_owned())?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        out
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

/// A redb error as a [`JournalError`]: I/O stays I/O, a corrupt file is
/// [`JournalError::Corrupt`], the rest is [`JournalError::Other`].
pub(super) fn journal_error(error: impl Into<redb::Error>) -> JournalError {
    match error.into() {
        redb::Error::Io(error) => JournalError::Io(error),
        redb::Error::Corrupted(reason) => JournalError::corrupt(None, reason),
        redb::Error::PreviousIo => JournalError::Failed,
        redb::Error::DatabaseAlreadyOpen => {
            JournalError::other("the journal file is already open (by this or another process)")
        }
        redb::Error::UpgradeRequired(version) => JournalError::corrupt(
            None,
            format!("the file has redb format version {version}, which this redb cannot read"),
        ),
        other => JournalError::other(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_and_without_task_id() {
        for task in [None, Some(Arc::<str>::from("task_1")), Some(Arc::from(""))] {
            let record = Record::new(task.clone(), Bytes::from_static(b"THJ1 whatever"));
            let entry = decode_entry(9, &encode_record(&record)).unwrap();
            assert_eq!(entry.seq(), 9);
            assert_eq!(entry.record(), &record);
            let encoded = encode_record(&record);
            assert_eq!(entry_task_id(&encoded), record.task_id());
        }
    }

    #[test]
    fn truncated_values_are_corrupt_not_panics() {
        let record = Record::new(Some(Arc::from("task_1")), Bytes::from_static(b"body"));
        let bytes = encode_record(&record);
        for len in 0..4 + "task_1".len() {
            assert!(decode_entry(1, &bytes[..len]).is_err(), "{len}");
        }
        for len in 0..20 {
            assert!(decode_dead_letter(1, &vec![0xff; len]).is_err(), "{len}");
        }
        for len in 0..4 + "task_1".len() {
            assert_eq!(entry_task_id(&bytes[..len]), None, "{len}");
        }
    }
}
