//! What the process tests share: a test upstream (an axum app in this
//! process that records what it is sent and answers as told) and a
//! `taskhook relay` process on loopback in front of it.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use taskhook_test_support::{exchange, post, RawResponse, PATIENCE};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------
// The test upstream

/// One request the upstream got.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) task_id: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// How the upstream answers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Behaviour {
    status: u16,
    delay: Duration,
}

#[derive(Clone)]
pub(crate) struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    answered: Arc<Mutex<usize>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl Upstream {
    pub(crate) async fn start(status: u16, delay: Duration) -> Self {
        Self::start_on(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            status,
            delay,
        )
    }

    pub(crate) fn start_on(listener: TcpListener, status: u16, delay: Duration) -> Self {
        let upstream = Upstream {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            answered: Arc::default(),
            behaviour: Arc::new(Mutex::new(Behaviour { status, delay })),
        };
        let app = Router::new()
            .fallback(Self::handle)
            .with_state(upstream.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        upstream
    }

    async fn handle(State(up): State<Upstream>, headers: HeaderMap, body: Bytes) -> StatusCode {
        let task_id = headers
            .get("taskhook-task-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        up.seen.lock().unwrap().push(Seen {
            task_id,
            headers,
            body,
        });
        let behaviour = *up.behaviour.lock().unwrap();
        tokio::time::sleep(behaviour.delay).await;
        *up.answered.lock().unwrap() += 1;
        StatusCode::from_u16(behaviour.status).unwrap()
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/app/callback", self.addr)
    }

    pub(crate) fn answer(&self, status: u16, delay: Duration) {
        *self.behaviour.lock().unwrap() = Behaviour { status, delay };
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub(crate) fn answered(&self) -> usize {
        *self.answered.lock().unwrap()
    }

    /// How many requests each task id got.
    pub(crate) fn per_task(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for seen in self.seen() {
            *counts.entry(seen.task_id).or_default() += 1;
        }
        counts
    }
}

// ---------------------------------------------------------------------------
// The relay process

/// A running `taskhook relay`, killed on drop.
pub(crate) struct Relay {
    child: Child,
    /// The public listener.
    pub(crate) addr: SocketAddr,
    /// The admin listener.
    pub(crate) admin: SocketAddr,
    stderr: PathBuf,
}

impl Relay {
    pub(crate) async fn start(data_dir: &Path, upstream: &str, extra: &[&str]) -> Self {
        Self::start_with_env(data_dir, upstream, extra, &[]).await
    }

    /// Starts the relay and waits until `/readyz` says it takes pushes
    /// (`503 starting` before: the journal is being replayed).
    pub(crate) async fn start_with_env(
        data_dir: &Path,
        upstream: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        std::fs::create_dir_all(data_dir).unwrap();
        let stderr = data_dir.join(format!(
            "stderr-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut command = Command::new(env!("CARGO_BIN_EXE_taskhook"));
        command
            .arg("relay")
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "--retry-base-ms",
                "50",
                "--retry-max-ms",
                "200",
                "--drain-secs",
                "10",
            ]);
        if !upstream.is_empty() {
            command.args(["--upstream", upstream]);
        }
        let mut child = command
            .args(extra)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start taskhook relay");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next = |prefix: &str| -> SocketAddr {
            let line = lines
                .next()
                .and_then(Result::ok)
                .unwrap_or_else(|| panic!("no {prefix:?} line; stderr:\n{}", read(&stderr)));
            line.strip_prefix(prefix)
                .unwrap_or_else(|| panic!("{line:?}"))
                .parse()
                .unwrap()
        };
        let addr = next("listening on ");
        let admin = next("admin listening on ");
        let relay = Relay {
            child,
            addr,
            admin,
            stderr,
        };
        let token = extra
            .iter()
            .position(|a| *a == "--admin-token")
            .map(|i| extra[i + 1]);
        eventually("the relay is ready", || async {
            relay.admin("GET", "/readyz", token).await.status == 200
        })
        .await;
        relay
    }

    pub(crate) fn pid(&self) -> String {
        self.child.id().to_string()
    }

    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; its exit code.
    pub(crate) fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE * 2;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the relay did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn stderr(&self) -> String {
        read(&self.stderr)
    }

    pub(crate) async fn push(&self, body: &[u8]) -> RawResponse {
        self.push_to("/callback", body).await
    }

    pub(crate) async fn push_to(&self, path: &str, body: &[u8]) -> RawResponse {
        post(self.addr, path, Some("application/json"), body).await
    }

    pub(crate) async fn admin(&self, method: &str, path: &str, token: Option<&str>) -> RawResponse {
        let auth = token
            .map(|t| format!("authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n",
            self.admin
        );
        exchange(self.admin, &head, &[]).await
    }

    pub(crate) async fn stats(&self) -> serde_json::Value {
        self.admin("GET", "/stats", None).await.json()
    }

    /// Waits until nothing is queued, running or waiting for a retry.
    pub(crate) async fn settled(&self) {
        eventually("the relay's queue is empty", || async {
            self.stats().await["pending"] == 0
        })
        .await;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A fresh data directory for one test.
pub(crate) fn data_dir(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("relay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Polls `check` every 10 ms until it holds, at most twice `PATIENCE`.
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE * 2;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A provider payload for task `id`, with the provider's own spacing.
pub(crate) fn payload(id: &str) -> Vec<u8> {
    format!(
        "{{\"code\": 200,\n  \"data\": {{\"id\": \"{id}\", \"status\": \"completed\",  \"result\": {{\"images\": [{{\"url\": [\"https://cdn.example.com/{id}.png\"], \"expires_at\": 1767000000}}]}}}}}}"
    )
    .into_bytes()
}
