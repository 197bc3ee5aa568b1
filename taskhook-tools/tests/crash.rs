//! The receiver with `--journal`, killed with SIGKILL at random
//! moments while a few thousand callbacks arrive, restarted each time.
//! At the end: every task id that was answered `2xx` was processed at least
//! once, nothing is left pending in the journal, and a duplicate of a task
//! acknowledged before a crash is answered `200` duplicate after it.
//!
//! The receiver is the tools' binary (`CARGO_BIN_EXE_receiver`). Loopback only, port 0; the seed of the random kill times is
//! printed, and `CRASH_SEED` replays it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use taskhook::backend::redb::RedbJournal;
use taskhook::fast_ack::journal::Journal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TASKS: usize = 3000;
const KILLS: usize = 4;
const SENDERS: usize = 32;

/// SplitMix64: random kill times, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

/// A running receiver.
struct Receiver {
    child: Child,
    addr: SocketAddr,
}

impl Receiver {
    fn start(binary: &Path, journal: &Path, log: &Path, stderr: &Path) -> Self {
        let stderr_file = std::fs::File::create(stderr).expect("stderr file");
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--handler-delay-ms", "50"])
            .arg("--journal")
            .arg(journal)
            .arg("--processed-log")
            .arg(log)
            .args(["--drain-secs", "20"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file))
            .spawn()
            .expect("the receiver starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the receiver announces its address");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.wait();
                let stderr = std::fs::read_to_string(stderr).unwrap_or_default();
                panic!("unexpected first line {line:?}; stderr:\n{stderr}")
            });
        Self { child, addr }
    }

    fn kill(&mut self) {
        // `Child::kill` is SIGKILL on Unix.
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    fn terminate(mut self) -> bool {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.success();
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a push got back: the status and whether it was a duplicate.
#[derive(Debug, Clone, Copy)]
struct Answer {
    status: u16,
    duplicate: bool,
}

/// POSTs the callback of `id`; `None` when the connection failed (the
/// receiver was killed, or is not listening yet).
async fn push(addr: SocketAddr, id: &str) -> Option<Answer> {
    let body = format!(r#"{{"code":200,"data":{{"id":"{id}","status":"completed"}}}}"#);
    let request = format!(
        "POST /callback HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw);
        let (head, _) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let duplicate = head
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("taskhook-duplicate:"));
        Some(Answer { status, duplicate })
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
}

/// Pushes every id of `queue` until it got a `2xx` (retrying `503`s and
/// failed connections, as the provider would), until `stop` is set.
async fn deliver(
    addr: SocketAddr,
    queue: Arc<Mutex<VecDeque<String>>>,
    acked: Arc<Mutex<HashSet<String>>>,
    stop: Arc<AtomicBool>,
) {
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (queue, acked, stop) = (Arc::clone(&queue), Arc::clone(&acked), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let Some(id) = queue.lock().unwrap().pop_front() else {
                        return;
                    };
                    match push(addr, &id).await {
                        Some(answer) if (200..300).contains(&answer.status) => {
                            acked.lock().unwrap().insert(id);
                        }
                        Some(answer) => {
                            assert_eq!(answer.status, 503, "{id}: only 503 may be refused");
                            queue.lock().unwrap().push_back(id);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        None => {
                            queue.lock().unwrap().push_back(id);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.expect("sender");
    }
}

/// Ids in the processed log, with their counts (a last line cut by a
/// SIGKILL is ignored).
fn processed(log: &Path) -> HashMap<String, u32> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut counts = HashMap::new();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    for line in complete.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let id = value["id"].as_str().expect("an id").to_owned();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_that_was_acknowledged() {
    let started = Instant::now();
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_receiver"));
    let (journal, log) = (dir.join("journal.redb"), dir.join("processed.jsonl"));

    let ids: Vec<String> = (0..TASKS).map(|i| format!("task_crash_{i:05}")).collect();
    let queue = Arc::new(Mutex::new(ids.iter().cloned().collect::<VecDeque<_>>()));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let mut duplicates_absorbed = 0;

    for life in 0..=KILLS {
        let stderr = dir.join(format!("stderr-{life}.txt"));
        let mut receiver = Receiver::start(binary, &journal, &log, &stderr);
        let addr = receiver.addr;

        // Duplicates of tasks acknowledged in earlier lives: absorbed, not
        // journaled again (`503 starting` while the replay runs is retried).
        let earlier: Vec<String> = acked.lock().unwrap().iter().take(50).cloned().collect();
        for id in &earlier {
            let answer = loop {
                match push(addr, id).await {
                    Some(answer) if answer.status == 503 => {}
                    Some(answer) => break answer,
                    None => {}
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            assert_eq!(answer.status, 200, "{id} after restart {life}");
            assert!(
                answer.duplicate,
                "{id} after restart {life}: not a duplicate"
            );
            duplicates_absorbed += 1;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let delivery = tokio::spawn(deliver(
            addr,
            Arc::clone(&queue),
            Arc::clone(&acked),
            Arc::clone(&stop),
        ));
        if life < KILLS {
            let after = Duration::from_millis(rng.between(50, 600));
            tokio::time::sleep(after).await;
            receiver.kill();
            stop.store(true, Ordering::SeqCst);
            delivery.await.unwrap();
            eprintln!(
                "life {life}: SIGKILL after {after:?}; {} of {TASKS} acknowledged, {} processed",
                acked.lock().unwrap().len(),
                processed(&log).len()
            );
        } else {
            delivery.await.unwrap();
            assert_eq!(
                acked.lock().unwrap().len(),
                TASKS,
                "every task acknowledged"
            );
            // Every acknowledged id gets processed, then a graceful stop
            // drains everything.
            let deadline = Instant::now() + Duration::from_secs(30);
            while processed(&log).len() < TASKS {
                assert!(
                    Instant::now() < deadline,
                    "not every acknowledged task was processed"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let drained = tokio::task::spawn_blocking(move || receiver.terminate())
                .await
                .unwrap();
            assert!(drained, "the receiver exits 0 once drained");
        }
    }

    let counts = processed(&log);
    let acked = acked.lock().unwrap().clone();
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged, never processed: {missing:?}"
    );
    let twice = counts.values().filter(|&&n| n > 1).count();
    assert!(
        duplicates_absorbed > 0,
        "no duplicate was pushed after a restart"
    );

    // Nothing is stuck in the journal.
    let journal = RedbJournal::open(&journal).expect("the journal opens after the crashes");
    assert!(
        journal.pending().await.unwrap().is_empty(),
        "entries left pending"
    );
    assert!(journal.dead_letters().await.unwrap().is_empty());
    eprintln!(
        "{TASKS} tasks, {KILLS} SIGKILLs: all processed ({twice} twice: replayed after a \
         crash between the handler and its completion), {duplicates_absorbed} duplicates \
         absorbed after restarts, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(journal);
    let _ = std::fs::remove_dir_all(&dir);
}
