//! The on-call page (`GET /` of the admin listener) in headless Chromium:
//! a relay in front of an upstream that refuses (422) holds two dead
//! letters; the page, given the admin token it asks for, lists both and
//! shows the counters; a click on one's Replay button replays it (the
//! upstream, answering 200 by then, gets it again) and its row leaves the
//! list while the other stays.
//!
//! Chromium is driven by Debian's `chromedriver` over the W3C WebDriver
//! protocol (plain HTTP and JSON, a few lines below), started by the test
//! on a free port in a process group of its own, killed with Chromium on
//! drop. Every request has a timeout, every wait a deadline. Chromium
//! missing is a failure (`.ci/run` installs it); `TASKHOOK_SKIP_BROWSER=1`
//! skips the test, loudly.
#![cfg(unix)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{data_dir, eventually, payload, read, Relay, Upstream};
use taskhook_test_support::PATIENCE;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL_HINT: &str = "install Debian's Chromium and ChromeDriver \
    (`apt-get install chromium chromium-driver`, as .ci/run does), \
    or set TASKHOOK_SKIP_BROWSER=1 to skip this test";

/// What a WebDriver command may take (a new session starts Chromium: more).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const SESSION_TIMEOUT: Duration = Duration::from_secs(60);

const TOKEN: &str = "on-call-t0ken";
const REPLAYED: &str = "task_page_1";
const KEPT: &str = "task_page_2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_on_call_page_replays_a_dead_letter_by_a_click() {
    if std::env::var_os("TASKHOOK_SKIP_BROWSER").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED: the on-call page test in headless Chromium (TASKHOOK_SKIP_BROWSER=1)");
        return;
    }
    let started = Instant::now();
    let dir = data_dir("page");
    let upstream = Upstream::start(422, Duration::ZERO).await;
    let relay = Relay::start(&dir, &upstream.url(), &["--admin-token", TOKEN]).await;
    for id in [REPLAYED, KEPT] {
        assert_eq!(relay.push(&payload(id)).await.status, 202);
    }
    eventually("two dead letters", || async {
        dead_letters(&relay).await.len() == 2
    })
    .await;
    upstream.answer(200, Duration::ZERO);

    let admin = relay.admin;
    let browser_dir = dir.clone();
    let clicked = tokio::task::spawn_blocking(move || replay_by_a_click(&browser_dir, admin)).await;
    if let Err(error) = clicked {
        std::panic::resume_unwind(error.into_panic());
    }

    // The relay agrees with the page: replayed and forwarded again, the
    // other one still a dead letter, not forwarded again.
    eventually("the replayed task is forwarded again", || async {
        upstream.per_task().get(REPLAYED) == Some(&2)
    })
    .await;
    assert_eq!(dead_letters(&relay).await, [KEPT]);
    assert_eq!(upstream.per_task().get(KEPT), Some(&1));
    eprintln!("the page test took {:?}", started.elapsed());
}

/// The task ids of the relay's dead letters.
async fn dead_letters(relay: &Relay) -> Vec<String> {
    let list = relay.admin("GET", "/dead-letters", Some(TOKEN)).await;
    assert_eq!(list.status, 200, "{list:?}");
    list.json()["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["task_id"].as_str().unwrap().to_owned())
        .collect()
}

/// In the browser: the token, the two letters, the counters, the click.
fn replay_by_a_click(dir: &Path, admin: SocketAddr) {
    let started = Instant::now();
    let browser = Browser::start(dir);
    eprintln!("chromedriver and Chromium up in {:?}", started.elapsed());
    browser.navigate(&format!("http://{admin}/"));

    // With --admin-token the page's first calls are answered 401: it asks.
    until("the page asks for the admin token", || {
        let page = browser.page();
        if page["token_asked"] == true {
            Ok(())
        } else {
            Err(page)
        }
    });
    let input = browser.find("#token");
    browser.type_into(&input, TOKEN);
    browser.click("#save-token");

    let page = until("both dead letters are listed", || {
        let page = browser.page();
        if letters(&page) == [REPLAYED, KEPT] {
            Ok(page)
        } else {
            Err(page)
        }
    });
    assert_eq!(page["count"], "2", "{page}");
    assert_eq!(page["error"], "", "{page}");
    assert_eq!(page["token_asked"], false, "{page}");
    let counters = page["counters"].as_object().expect("the counters");
    assert!(counters.len() >= 10, "{page}");
    for (name, value) in counters {
        let value = value.as_str().unwrap_or_default();
        assert!(
            !value.is_empty()
                && value
                    .split(" / ")
                    .all(|n| n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty()),
            "counter {name}: {value:?} is not a number: {page}"
        );
    }
    assert_eq!(counters["accepted"], "2", "{page}");
    assert_eq!(counters["dead_letters"], "2", "{page}");
    assert_eq!(counters["replayed"], "0", "{page}");

    browser.click(&format!(
        "#dead-letters tr[data-task=\"{REPLAYED}\"] button.replay"
    ));
    let page = until(
        "the replayed letter leaves the list, the other stays",
        || {
            let page = browser.page();
            if letters(&page) == [KEPT]
                && page["count"] == "1"
                && page["counters"]["replayed"] == "1"
                && page["counters"]["dead_letters"] == "1"
            {
                Ok(page)
            } else {
                Err(page)
            }
        },
    );
    assert_eq!(page["status"], format!("{REPLAYED} replayed"), "{page}");
    assert_eq!(page["error"], "", "{page}");
}

/// The task ids in the page's dead-letter table, sorted.
fn letters(page: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> = page["letters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    ids.sort_unstable();
    ids
}

/// Polls `probe` every 50 ms until it holds, at most twice `PATIENCE`; on
/// a timeout, the last thing it saw is in the message.
fn until<T>(what: &str, mut probe: impl FnMut() -> Result<T, Value>) -> T {
    let deadline = Instant::now() + PATIENCE * 2;
    loop {
        match probe() {
            Ok(done) => return done,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "timed out waiting until {what}; the page: {seen}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// A WebDriver client: chromedriver and one headless Chromium session

/// What the test reads off the page.
const PAGE_STATE: &str = r#"
const $ = (id) => document.getElementById(id);
const rows = (id) => [...$(id).tBodies[0].rows];
return {
  token_asked: !$("token-box").hidden,
  letters: rows("dead-letters").map((r) => r.dataset.task),
  count: $("dead-count").textContent,
  counters: Object.fromEntries(rows("counters").map((r) => [r.dataset.counter, r.cells[1].textContent])),
  error: $("error").textContent,
  status: $("status").textContent,
};
"#;

/// The key of a web element in WebDriver's JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver with one Chromium session; both killed on drop.
struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    profile: PathBuf,
    log: PathBuf,
}

/// A WebDriver error: the HTTP status, `error` and `message`.
#[derive(Debug)]
struct WebDriverError {
    status: u16,
    error: String,
    message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.error, self.message)
    }
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session
    /// with an empty profile in `dir`.
    fn start(dir: &Path) -> Self {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: {INSTALL_HINT}"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let profile = dir.join("chromium-profile");
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let log = dir.join("chromedriver.log");
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Chromium inherits the group: one kill on drop ends them all.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {CHROMEDRIVER}: {e}: {INSTALL_HINT}"));
        let mut browser = Browser {
            driver,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            session: String::new(),
            profile,
            log,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = http(browser.addr, "GET", "/status", None, Duration::from_secs(2));
            if matches!(&status, Ok((200, v)) if v["value"]["ready"] == true) {
                break;
            }
            if let Ok(Some(exit)) = browser.driver.try_wait() {
                panic!("chromedriver exited ({exit}): {}", browser.log());
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not come up on port {port} ({status:?}): {}",
                browser.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": { "implicit": 0, "pageLoad": 20_000, "script": 10_000 },
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                // Without the networking switches Chromium reaches for
                // Google's hosts, which a closed network refuses.
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", browser.profile.display()),
                ],
            },
        }}});
        let session = browser
            .request("POST", "/session", Some(&capabilities), SESSION_TIMEOUT)
            .unwrap_or_else(|e| panic!("no Chromium session: {e}: {}", browser.log()));
        browser.session = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {session}"))
            .to_owned();
        browser
    }

    fn log(&self) -> String {
        let log = read(&self.log);
        let tail = log.len().saturating_sub(4000);
        format!(
            "chromedriver log ({}):\n{}",
            self.log.display(),
            &log[tail..]
        )
    }

    /// One command; its `value`, or the WebDriver error.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, WebDriverError> {
        let (status, mut answer) =
            http(self.addr, method, path, body, timeout).map_err(|e| WebDriverError {
                status: 0,
                error: "no answer".into(),
                message: format!("{method} {path}: {e}"),
            })?;
        let value = answer["value"].take();
        if status == 200 {
            Ok(value)
        } else {
            Err(WebDriverError {
                status,
                error: value["error"].as_str().unwrap_or_default().to_owned(),
                message: value["message"].as_str().unwrap_or_default().to_owned(),
            })
        }
    }

    /// A command of this session that must succeed.
    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_command(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    fn try_command(&self, method: &str, path: &str, body: Value) -> Result<Value, WebDriverError> {
        let path = format!("/session/{}{path}", self.session);
        self.request(method, &path, Some(&body), COMMAND_TIMEOUT)
    }

    fn navigate(&self, url: &str) {
        self.command("POST", "/url", json!({ "url": url }));
    }

    fn try_find(&self, css: &str) -> Result<String, WebDriverError> {
        let found = self.try_command(
            "POST",
            "/element",
            json!({ "using": "css selector", "value": css }),
        )?;
        Ok(found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element id in {found}"))
            .to_owned())
    }

    fn find(&self, css: &str) -> String {
        self.try_find(css)
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    fn type_into(&self, element: &str, text: &str) {
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        );
    }

    /// Clicks (a real click: scrolled into view, checked to be the element
    /// hit) the element `css` picks. Found again if the page redrew it in
    /// between (it does every 2 s).
    fn click(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let clicked = self
                .try_find(css)
                .and_then(|e| self.try_command("POST", &format!("/element/{e}/click"), json!({})));
            match clicked {
                Ok(_) => return,
                Err(e) if e.error == "stale element reference" && Instant::now() < deadline => {}
                Err(e) => panic!("click on {css}: {e}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the page shows (see `PAGE_STATE`).
    fn page(&self) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            json!({ "script": PAGE_STATE, "args": [] }),
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = http(self.addr, "DELETE", &path, None, Duration::from_secs(10));
        }
        // chromedriver and every Chromium process it started, by the group's id.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One HTTP/1.1 request with a JSON body; the status and the JSON answer
/// (`null` if empty). Reads by `Content-Length` (chromedriver keeps the
/// connection open); connecting, writing and reading all under `timeout`.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> std::io::Result<(u16, Value)> {
    use std::io::{Error, ErrorKind};
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_write_timeout(Some(timeout))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    // Until the head and `Content-Length` bytes of body are in (or the end).
    let (head_end, length) = loop {
        let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n");
        let length = head_end.and_then(|end| content_length(&raw[..end]));
        if let (Some(end), Some(length)) = (head_end, length) {
            if raw.len() >= end + 4 + length {
                break (end, Some(length));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::new(ErrorKind::TimedOut, format!("{method} {path}")));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf)? {
            0 => match head_end {
                Some(end) => break (end, length),
                None => return Err(Error::new(ErrorKind::UnexpectedEof, "no head")),
            },
            n => raw.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::new(ErrorKind::InvalidData, head.to_string()))?;
    let body_start = head_end + 4;
    let body_end = length.map_or(raw.len(), |l| (body_start + l).min(raw.len()));
    let body = &raw[body_start..body_end];
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| Error::new(ErrorKind::InvalidData, e))?
    };
    Ok((status, json))
}

/// The `Content-Length` of a response head.
fn content_length(head: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(head).lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}
