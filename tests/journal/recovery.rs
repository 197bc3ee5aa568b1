//! What opening a journal logs: nothing for a brand-new file or one closed
//! cleanly, one warning for a file a process left without closing it.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use taskhook::backend::redb::RedbJournal;
use taskhook::fast_ack::journal::Journal;
use tracing::field::{Field, Visit};
use tracing::Level;

use super::{life, record, TempDir};

/// One event: its level, its message, its `path` field, and the thread
/// that logged it (opening runs on the caller's thread).
#[derive(Debug, Clone)]
struct Logged {
    level: Level,
    message: String,
    path: Option<String>,
    thread: std::thread::ThreadId,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Logged>>>);

#[derive(Default)]
struct Fields {
    message: String,
    path: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "path" => self.path = Some(format!("{value:?}")),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "path" => self.path = Some(value.to_owned()),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0.lock().unwrap().push(Logged {
            level: *event.metadata().level(),
            message: fields.message,
            path: fields.path,
            thread: std::thread::current().id(),
        });
    }
}

/// Every event of this test binary, from one global subscriber (a scoped
/// one races with tests on other threads over the callsites' interest).
fn captured() -> &'static Capture {
    use tracing_subscriber::layer::SubscriberExt;

    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        tracing::subscriber::set_global_default(subscriber)
            .expect("the only global subscriber of this test binary");
        capture
    })
}

/// The warnings (and worse) logged so far on this thread (each test opens
/// its journals on its own thread), checked to name the journal at `path`
/// when they name one.
fn warnings_about(path: &Path) -> Vec<Logged> {
    let path = path.display().to_string();
    let thread = std::thread::current().id();
    captured()
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.level <= Level::WARN && e.thread == thread)
        .filter(|e| e.path.as_ref().map_or(true, |p| *p == path))
        .cloned()
        .collect()
}

#[test]
fn a_new_file_and_a_cleanly_closed_one_open_without_a_recovery_warning() {
    captured();
    let dir = TempDir::new("log-clean");
    let path = dir.file();
    life(|| async {
        let journal = RedbJournal::open(&path).unwrap();
        journal.append(vec![record(1)]).await.unwrap();
    });
    assert_eq!(
        warnings_about(&path).len(),
        0,
        "{:?}",
        warnings_about(&path)
    );
    // Closed cleanly (the last clone was dropped): nothing to recover.
    for _ in 0..2 {
        let journal = RedbJournal::open(&path).unwrap();
        drop(journal);
    }
    assert_eq!(
        warnings_about(&path).len(),
        0,
        "{:?}",
        warnings_about(&path)
    );
}

#[test]
fn a_file_left_open_by_a_process_that_died_logs_one_recovery_warning() {
    captured();
    let dir = TempDir::new("log-crash");
    let path = dir.file();
    // A copy taken while the journal is open is what a killed process
    // leaves behind: every synced commit, and no clean close.
    let left = dir.0.join("left-open.redb");
    life(|| async {
        let journal = RedbJournal::open(&path).unwrap();
        journal.append(vec![record(1)]).await.unwrap();
        std::fs::copy(&path, &left).unwrap();
    });
    assert_eq!(warnings_about(&left).len(), 0);

    let journal = RedbJournal::open(&left).unwrap();
    let warnings = warnings_about(&left);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].level, Level::WARN);
    assert!(
        warnings[0].message.contains("not closed cleanly"),
        "{warnings:?}"
    );
    let pending = life(|| async { journal.pending().await.unwrap() });
    assert_eq!(pending.len(), 1);
    drop(journal);

    // Recovered and then closed cleanly: nothing more.
    drop(RedbJournal::open(&left).unwrap());
    assert_eq!(warnings_about(&left).len(), 1);
    // The original, closed cleanly, logged nothing either.
    assert_eq!(warnings_about(&path).len(), 0);
}
