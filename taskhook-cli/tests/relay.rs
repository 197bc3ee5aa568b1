//! `taskhook relay` as a process on loopback, in front of a test upstream
//! (an axum app in this process that records what it is sent and answers
//! as told): fast acks while the upstream is slow, duplicates not
//! forwarded, the provider's bytes unchanged, the upstream down and back,
//! a refusal turned dead letter and replayed through the admin API,
//! SIGKILL and restart, SIGTERM and drain, the tokens, and the metrics.
#![cfg(unix)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{data_dir, eventually, payload, Relay, Seen, Upstream};
use taskhook_test_support::fixture;
use tokio::net::TcpListener;

fn header<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header: {:?}", seen.headers))
}

// ---------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_stay_fast_while_the_upstream_is_slow() {
    let upstream = Upstream::start(200, Duration::from_secs(5)).await;
    let relay = Relay::start(&data_dir("slow"), &upstream.url(), &[]).await;
    let mut latencies = Vec::new();
    for i in 0..16 {
        let started = Instant::now();
        let answer = relay.push(&payload(&format!("task_slow_{i:02}"))).await;
        latencies.push(started.elapsed());
        assert_eq!(answer.status, 202, "{answer:?}");
    }
    // Every push was answered before the upstream finished a single one.
    assert_eq!(upstream.answered(), 0, "the acks waited for the upstream");
    latencies.sort();
    eprintln!(
        "ack latency with a 5 s upstream: p50 {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    eventually("every task forwarded", || async {
        upstream.answered() == 16
    })
    .await;
    assert!(upstream.per_task().values().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_not_forwarded_and_the_bytes_arrive_unchanged() {
    let upstream = Upstream::start(200, Duration::from_millis(50)).await;
    let relay = Relay::start(
        &data_dir("dups"),
        &upstream.url(),
        &["--upstream-header", "Authorization: Bearer app-secret"],
    )
    .await;
    let body = fixture("completed-extra-fields");
    let first = relay.push(&body).await;
    assert_eq!(first.status, 202, "{first:?}");
    // Again at once (in flight or done) and twice at the same moment.
    let again = relay.push(&body).await;
    let (a, b) = tokio::join!(relay.push(&body), relay.push(&body));
    for answer in [&again, &a, &b] {
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    relay.settled().await;
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let seen = &seen[0];
    assert_eq!(
        seen.body.as_ref(),
        body.as_slice(),
        "the provider's bytes, unchanged"
    );
    assert_eq!(header(seen, "taskhook-attempt"), "1");
    assert_eq!(header(seen, "authorization"), "Bearer app-secret");
    assert_eq!(header(seen, "content-type"), "application/json");
    assert!(header(seen, "taskhook-received-at").ends_with('Z'));
    assert!(!header(seen, "taskhook-task-id").is_empty());
    assert!(
        seen.headers.get("connection").is_none(),
        "hop-by-hop headers stay behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_down_for_a_while_gets_every_task_once_when_back() {
    // A port with nothing on it yet: connections are refused.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port_addr = reserved.local_addr().unwrap();
    drop(reserved);
    let url = format!("http://{port_addr}/app/callback");
    let relay = Relay::start(&data_dir("down"), &url, &["--max-attempts", "50"]).await;
    let ids: Vec<String> = (0..10).map(|i| format!("task_down_{i:02}")).collect();
    for id in &ids {
        assert_eq!(relay.push(&payload(id)).await.status, 202);
    }
    eventually("attempts failed while the upstream is down", || async {
        relay.stats().await["fast_ack"]["failed_attempts"].as_u64() >= Some(10)
    })
    .await;
    let upstream = Upstream::start_on(
        TcpListener::bind(port_addr).await.unwrap(),
        200,
        Duration::ZERO,
    );
    relay.settled().await;
    let per_task = upstream.per_task();
    assert_eq!(
        per_task.len(),
        ids.len(),
        "{per_task:?} {} {}",
        relay.stats().await,
        relay.stderr()
    );
    for id in &ids {
        assert_eq!(per_task.get(id), Some(&1), "{id}: {per_task:?}");
    }
    assert!(upstream
        .seen()
        .iter()
        .all(|s| header(s, "taskhook-attempt").parse::<u32>().unwrap() > 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_a_dead_letter_listed_and_replayed_through_the_admin_api() {
    let upstream = Upstream::start(422, Duration::ZERO).await;
    let relay = Relay::start(&data_dir("dead"), &upstream.url(), &[]).await;
    assert_eq!(relay.push(&payload("task_refused_1")).await.status, 202);
    assert_eq!(relay.push(&payload("task_refused_2")).await.status, 202);
    eventually("two dead letters", || async {
        relay.admin("GET", "/dead-letters", None).await.json()["dead_letters"]
            .as_array()
            .is_some_and(|l| l.len() == 2)
    })
    .await;
    assert_eq!(upstream.seen().len(), 2, "a refusal is not retried");
    let list = relay.admin("GET", "/dead-letters", None).await.json();
    let letter = &list["dead_letters"][0];
    assert_eq!(letter["attempts"], 1);
    assert!(
        letter["last_error"].as_str().unwrap().contains("422"),
        "{letter}"
    );
    assert!(letter["received_at_ms"].as_u64().unwrap() > 0);

    upstream.answer(200, Duration::ZERO);
    let replay = relay
        .admin("POST", "/dead-letters/task_refused_1/replay", None)
        .await;
    assert_eq!(replay.status, 202, "{replay:?}");
    let deleted = relay
        .admin("DELETE", "/dead-letters/task_refused_2", None)
        .await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    relay.settled().await;
    assert_eq!(upstream.per_task().get("task_refused_1"), Some(&2));
    assert_eq!(
        upstream.per_task().get("task_refused_2"),
        Some(&1),
        "deleted, not forwarded"
    );
    let list = relay.admin("GET", "/dead-letters", None).await.json();
    assert_eq!(list["dead_letters"].as_array().unwrap().len(), 0, "{list}");
    let missing = relay.admin("POST", "/dead-letters/nope/replay", None).await;
    assert_eq!(missing.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_loses_nothing_acknowledged() {
    let upstream = Upstream::start(200, Duration::from_millis(100)).await;
    let dir = data_dir("kill");
    let relay = Relay::start(&dir, &upstream.url(), &["--upstream-concurrency", "2"]).await;
    let ids: Vec<String> = (0..40).map(|i| format!("task_kill_{i:02}")).collect();
    for id in &ids {
        assert_eq!(relay.push(&payload(id)).await.status, 202);
    }
    eventually("a few forwarded", || async { upstream.answered() >= 4 }).await;
    relay.signal("KILL");
    drop(relay);
    let forwarded_before = upstream.per_task().len();
    assert!(
        forwarded_before < ids.len(),
        "the kill came too late to test anything"
    );

    let relay = Relay::start(&dir, &upstream.url(), &["--upstream-concurrency", "8"]).await;
    relay.settled().await;
    let per_task = upstream.per_task();
    for id in &ids {
        assert!(
            per_task.contains_key(id),
            "{id} was acknowledged and never forwarded"
        );
    }
    // A duplicate of a task done before the crash: 200, not forwarded.
    let before = upstream.seen().len();
    let again = relay.push(&payload(&ids[0])).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert!(again.header("taskhook-duplicate").is_some(), "{again:?}");
    relay.settled().await;
    assert_eq!(upstream.seen().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_intake_drains_and_exits_zero() {
    let upstream = Upstream::start(200, Duration::from_millis(300)).await;
    let mut relay = Relay::start(
        &data_dir("term"),
        &upstream.url(),
        &["--upstream-concurrency", "1"],
    )
    .await;
    for i in 0..5 {
        assert_eq!(
            relay.push(&payload(&format!("task_term_{i}"))).await.status,
            202
        );
    }
    relay.signal("TERM");
    eventually("intake stopped", || async {
        let answer = relay.push(&payload("task_term_late")).await;
        if answer.status == 503 {
            assert!(answer.header("retry-after").is_some(), "{answer:?}");
        }
        answer.status == 503
    })
    .await;
    assert_eq!(relay.wait(), Some(0), "{}", relay.stderr());
    assert_eq!(upstream.per_task().len(), 5);
    assert!(!upstream.per_task().contains_key("task_term_late"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_path_token_and_the_admin_token_are_enforced() {
    let upstream = Upstream::start(200, Duration::ZERO).await;
    let (old, new) = ("k3Qm9x_T2vLr8pZa", "n3w-s3cret-9876543210");
    let relay = Relay::start_with_env(
        &data_dir("tokens"),
        &upstream.url(),
        // Two tokens while rotating.
        &[
            "--path-token",
            old,
            "--path-token",
            new,
            "--admin-token",
            "adm1n-t0ken",
        ],
        &[],
    )
    .await;
    for path in [
        "/callback",
        "/hooks/wrong-token-123456/callback",
        "/hooks/callback",
    ] {
        let answer = relay.push_to(path, &payload("task_token_x")).await;
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
        assert!(answer.body.is_empty(), "{path}: {answer:?}");
    }
    let answer = relay
        .push_to(&format!("/hooks/{old}/callback"), &payload("task_token_1"))
        .await;
    assert_eq!(answer.status, 202, "{answer:?}");
    let answer = relay
        .push_to(&format!("/hooks/{new}/callback"), &payload("task_token_2"))
        .await;
    assert_eq!(answer.status, 202, "{answer:?}");

    assert_eq!(relay.admin("GET", "/stats", None).await.status, 401);
    assert_eq!(
        relay
            .admin("GET", "/dead-letters", Some("wrong"))
            .await
            .status,
        401
    );
    let stats = relay.admin("GET", "/stats", Some("adm1n-t0ken")).await;
    assert_eq!(stats.status, 200, "{stats:?}");
    let page = relay.admin("GET", "/", None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Dead letters"));
    eventually("forwarded", || async { upstream.answered() == 2 }).await;
    assert!(!upstream.per_task().contains_key("task_token_x"));
    assert!(!relay.stderr().contains(old), "a path token was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_come_from_the_environment_and_a_config_file() {
    let upstream = Upstream::start(200, Duration::ZERO).await;
    let dir = data_dir("config");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("taskhook.toml");
    std::fs::write(
        &config,
        "path-token = [\"fr0m-the-f1le-token\"]\nmax-attempts = 3\n",
    )
    .unwrap();
    let relay = Relay::start_with_env(
        &dir,
        "",
        &["--config", config.to_str().unwrap()],
        &[("TASKHOOK_UPSTREAM", &upstream.url())],
    )
    .await;
    let answer = relay
        .push_to(
            "/hooks/fr0m-the-f1le-token/callback",
            &payload("task_config_1"),
        )
        .await;
    assert_eq!(answer.status, 202, "{answer:?}");
    eventually("forwarded", || async { upstream.answered() == 1 }).await;

    // Without an upstream anywhere: a clear error, exit 2.
    let out = Command::new(env!("CARGO_BIN_EXE_taskhook"))
        .args(["relay", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--upstream"));
}
