//! The storage backend under the journal: redb's file backend, with a switch
//! that makes writes or syncs fail, to exercise the error path for real.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use redb::backends::FileBackend;
use redb::StorageBackend;

/// Switches that make the journal's storage fail as a full or broken disk
/// would: redb then sees a real I/O error from its backend.
///
/// For tests of the error path (feature `test-util`), from
/// [`RedbJournal::fault_injection`](super::RedbJournal::fault_injection).
// Without `test-util` the type is only the journal's internal switchboard.
#[cfg_attr(not(feature = "test-util"), allow(unreachable_pub))]
#[derive(Debug, Clone, Default)]
pub struct FaultInjection {
    faults: Arc<Faults>,
}

#[derive(Debug, Default)]
struct Faults {
    writes: AtomicBool,
    syncs: AtomicBool,
    /// While `true`, a sync waits (to line up a batch behind it).
    hold: Mutex<bool>,
    released: Condvar,
    held: AtomicUsize,
}

#[cfg(feature = "test-util")]
impl FaultInjection {
    /// Makes every write to the file fail (`true`) or succeed again.
    pub fn fail_writes(&self, fail: bool) {
        self.faults.writes.store(fail, Ordering::SeqCst);
    }

    /// Makes every sync of the file fail (`true`) or succeed again.
    pub fn fail_syncs(&self, fail: bool) {
        self.faults.syncs.store(fail, Ordering::SeqCst);
    }

    /// Makes syncs wait (`true`) until released (`false`).
    pub fn hold_syncs(&self, hold: bool) {
        *self.faults.hold.lock().unwrap_or_else(|e| e.into_inner()) = hold;
        self.faults.released.notify_all();
    }

    /// The number of syncs waiting because of [`hold_syncs`](Self::hold_syncs).
    pub fn syncs_held(&self) -> usize {
        self.faults.held.load(Ordering::SeqCst)
    }
}

/// [`FileBackend`] with the [`FaultInjection`] switches in front.
#[derive(Debug)]
pub(super) struct Backend {
    file: FileBackend,
    faults: Arc<Faults>,
}

impl Backend {
    pub(super) fn new(file: FileBackend, faults: &FaultInjection) -> Self {
        Self {
            file,
            faults: Arc::clone(&faults.faults),
        }
    }
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected fault: {what} failed (disk full)"))
}

impl StorageBackend for Backend {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        if self.faults.writes.load(Ordering::SeqCst) {
            return Err(injected("growing the file"));
        }
        self.file.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut hold = self.faults.hold.lock().unwrap_or_else(|e| e.into_inner());
        if *hold {
            self.faults.held.fetch_add(1, Ordering::SeqCst);
            while *hold {
                hold = self
                    .faults
                    .released
                    .wait(hold)
                    .unwrap_or_else(|e| e.into_inner());
            }
            self.faults.held.fetch_sub(1, Ordering::SeqCst);
        }
        drop(hold);
        if self.faults.syncs.load(Ordering::SeqCst) {
            return Err(injected("sync"));
        }
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        if self.faults.writes.load(Ordering::SeqCst) {
            return Err(injected("write"));
        }
        self.file.write(offset, data)
    }

    fn close(&self) -> Result<(), io::Error> {
        self.file.close()
    }
}
