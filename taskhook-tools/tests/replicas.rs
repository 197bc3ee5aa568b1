//! Three receiver processes (`receiver --redis URL`) share one
//! Redis behind a load balancer that spreads the simulator's connections at
//! random: one receiver is killed (SIGKILL) mid-run and not restarted; in
//! another run Redis itself is killed and restarted mid-run.
#![cfg(all(feature = "redis", unix))]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use taskhook::backend::redis::{RedisConnection, RedisJournal};
use taskhook_sim::Workload;
use tokio::time::Instant;

use taskhook_test_support::redis::RedisServer;
use taskhook_test_support::replicas::{
    run_through_a_redis_restart, run_with_disruption, task_ids, Balancer,
};
use taskhook_test_support::PATIENCE;

/// A receiver process, killed on drop.
struct Receiver {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Receiver {
    fn start(index: usize, redis: &str, dir: &Path, claim_idle_ms: u64, delay_ms: u64) -> Self {
        let log = dir.join(format!("replica-{index}.jsonl"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_receiver"))
            .args(["--listen", "127.0.0.1:0", "--redis", redis])
            .arg("--replica")
            .arg(format!("replica-{index}"))
            .arg("--claim-idle-ms")
            .arg(claim_idle_ms.to_string())
            // The scaled provider retries after 0.5 s, 1.5 s and 3 s: a
            // dead receiver's dedup claim must not outlive them.
            .args(["--dedup-claim-ms", "1000"])
            .arg("--processed-log")
            .arg(&log)
            .arg("--handler-delay-ms")
            .arg(delay_ms.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the receiver");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("read the first line");
        let addr = first
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line {first:?}"))
            .parse()
            .expect("an address");
        Self { child, addr, log }
    }

    /// The task ids of every complete line of its processed log.
    fn processed(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.split_inclusive('\n')
            .filter(|line| line.ends_with('\n'))
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
                value["id"].as_str().expect("an id").to_owned()
            })
            .collect()
    }

    /// SIGTERM, then a bounded wait: answers whether it exited 0 (drained).
    fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.expect("run kill").success());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.success();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit after SIGTERM"
            );
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

/// The number of journal entries `consumer` holds (`XPENDING` summary,
/// read with `redis-cli`).
fn held_by(server: &RedisServer, consumer: &str) -> usize {
    let output = Command::new("redis-cli")
        .arg("-u")
        .arg(server.url())
        .args(["XPENDING", "taskhook:journal", "taskhook"])
        .output()
        .expect("redis-cli runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    lines
        .iter()
        .position(|line| *line == consumer)
        .and_then(|at| lines.get(at + 1))
        .and_then(|count| count.parse().ok())
        .unwrap_or(0)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taskhook-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until every id is in some processed log (of `receivers` or in
/// `earlier`) and nothing is pending.
async fn wait_processed(
    receivers: &[Receiver],
    earlier: &HashSet<String>,
    ids: &HashSet<String>,
    url: &str,
) {
    let redis = RedisConnection::connect(url).await.unwrap();
    let journal = RedisJournal::builder(redis).build().await.unwrap();
    let deadline = Instant::now() + PATIENCE * 3;
    loop {
        let mut seen: HashSet<String> = receivers.iter().flat_map(Receiver::processed).collect();
        seen.extend(earlier.iter().cloned());
        let pending = journal.pending_count().await.unwrap();
        if seen.is_superset(ids) && pending == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not processed: {:?}; pending: {pending}",
            ids.difference(&seen).take(5).collect::<Vec<_>>(),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_receiver_processes_one_killed_every_task_processed() {
    let server = RedisServer::start();
    let dir = temp_dir("replicas-kill");
    // The victim (1) is slow, so that it dies with work in hand.
    let receivers: Vec<Receiver> = (0..3)
        .map(|index| {
            let delay = if index == 1 { 200 } else { 20 };
            Receiver::start(index, &server.url(), &dir, 1000, delay)
        })
        .collect();
    let balancer = Balancer::start(receivers.iter().map(|r| r.addr).collect()).await;
    let workload = Workload::new(300)
        .seed(21)
        .immediate_duplicates(0.1)
        .concurrent_duplicates(0.1);
    let ids = task_ids(&workload);

    let mut receivers = receivers;
    let mut victim = receivers.remove(1);
    let mut orphans = 0;
    let report = run_with_disruption(balancer.base(), workload, || async {
        victim.child.kill().expect("SIGKILL the victim");
        let _ = victim.child.wait();
        orphans = held_by(&server, "replica-1");
    })
    .await;
    assert!(orphans > 0, "the victim died holding journal entries");
    let summary = report.summary();
    assert_eq!(summary.tasks_undelivered, 0, "{summary:?}");
    assert_eq!(summary.rejected, 0, "{summary:?}");

    let victims: HashSet<String> = victim.processed().into_iter().collect();
    wait_processed(&receivers, &victims, &ids, &server.url()).await;

    // Once per task, except where the kill forced a redelivery: the victim
    // logged the run and died before its XACK, and a survivor ran it again.
    let mut runs: HashMap<String, usize> = HashMap::new();
    for id in victim
        .processed()
        .into_iter()
        .chain(receivers.iter().flat_map(Receiver::processed))
    {
        *runs.entry(id).or_default() += 1;
    }
    let mut forced = 0;
    for (id, count) in &runs {
        if *count > 1 {
            forced += 1;
            assert_eq!(*count, 2, "{id} ran {count} times");
            assert!(victims.contains(id), "{id} ran twice without the crash");
        }
    }
    eprintln!(
        "receiver processes: {} tasks, {} pushes ({} duplicates), victim ran {} and died holding {orphans} entries (taken over), {forced} ran twice (forced by the kill)",
        summary.tasks,
        summary.pushes,
        summary.duplicate_pushes,
        victims.len(),
    );
    for receiver in receivers {
        assert!(receiver.terminate(), "a survivor drains and exits 0");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_processes_survive_a_redis_restart_mid_run() {
    let mut server = RedisServer::start();
    let dir = temp_dir("replicas-redis-restart");
    // An idle bound longer than the outage: no takeover, so no second runs.
    let receivers: Vec<Receiver> = (0..3)
        .map(|index| Receiver::start(index, &server.url(), &dir, 10_000, 20))
        .collect();
    let balancer = Balancer::start(receivers.iter().map(|r| r.addr).collect()).await;
    let workload = Workload::new(300).seed(22).immediate_duplicates(0.1);
    let ids = task_ids(&workload);

    let (summary, refused) = run_through_a_redis_restart(&mut server, &balancer, workload).await;

    wait_processed(&receivers, &HashSet::new(), &ids, &server.url()).await;
    let runs: Vec<String> = receivers.iter().flat_map(Receiver::processed).collect();
    let distinct: HashSet<&String> = runs.iter().collect();
    eprintln!(
        "receiver processes, redis restart: {} tasks, {refused} attempts answered 503, {} retries, {} runs",
        summary.tasks,
        summary.retries,
        runs.len()
    );
    assert_eq!(runs.len(), distinct.len(), "no task ran twice");
    for receiver in receivers {
        assert!(receiver.terminate(), "drains and exits 0");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
