//! The relay's settings: each flag also comes from an environment variable
//! `TASKHOOK_<FLAG>` and from the optional `--config` TOML file, whose keys
//! are the flags' names (`upstream-timeout-ms = 30000`). The command line
//! wins over the environment, which wins over the file, which wins over the
//! defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, ValueEnum};
use http::{HeaderName, HeaderValue, Uri};
use serde::Deserialize;
use taskhook::provider::{Authenticity, Profile};
use taskhook::verify::{Cidr, HeaderSecretLayer, KieSecret, PathSecret, WebhookKey};

/// `taskhook relay`: the flags as clap parses them.
#[derive(Debug, Clone, Args)]
pub(crate) struct RelayArgs {
    /// A TOML file with any of these settings, keyed by flag name
    /// (`upstream = "http://127.0.0.1:8000/callback"`).
    #[arg(long, env = "TASKHOOK_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// The public listener the provider pushes to (port 0: a free port).
    /// The first line on stdout is `listening on ADDR` with the real port.
    #[arg(
        long,
        env = "TASKHOOK_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub(crate) listen: SocketAddr,

    /// Where each task is forwarded, once (required).
    #[arg(long, env = "TASKHOOK_UPSTREAM", value_name = "URL")]
    pub(crate) upstream: Option<String>,

    /// The embedded durable default: the journal and the done task ids, in
    /// a redb file in this directory.
    #[arg(
        long,
        env = "TASKHOOK_DATA_DIR",
        value_name = "DIR",
        default_value = "./taskhook-data"
    )]
    pub(crate) data_dir: PathBuf,

    /// Where accepted events are kept until forwarded: `redb` (in
    /// `--data-dir`, survives a crash) or `memory` (lost on a crash or a
    /// drain deadline; for tests and benchmarks).
    #[arg(long, env = "TASKHOOK_JOURNAL", value_name = "KIND", value_enum, default_value_t = JournalKind::Redb)]
    pub(crate) journal: JournalKind,

    /// Share the journal and dedup with other replicas on this Redis
    /// instead of the data directory.
    #[arg(long, env = "TASKHOOK_REDIS", value_name = "URL")]
    pub(crate) redis: Option<String>,

    /// Pushes must arrive at `/hooks/<T>/callback`; a wrong or missing
    /// token gets an empty 404. Repeat it to rotate (environment: comma
    /// separated). Never logged.
    #[arg(
        long,
        env = "TASKHOOK_PATH_TOKEN",
        value_name = "T",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub(crate) path_token: Vec<String>,

    /// Accept pushes only from these networks (repeatable; `403` else).
    #[arg(
        long,
        env = "TASKHOOK_ALLOW_IP",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub(crate) allow_ip: Vec<String>,

    /// Proxies in front of the relay whose `X-Forwarded-For` is believed
    /// (repeatable).
    #[arg(
        long,
        env = "TASKHOOK_TRUSTED_PROXY",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub(crate) trusted_proxy: Vec<String>,

    /// How long one forward may take before it is retried.
    #[arg(
        long,
        env = "TASKHOOK_UPSTREAM_TIMEOUT_MS",
        value_name = "MS",
        default_value_t = 30_000
    )]
    pub(crate) upstream_timeout_ms: u64,

    /// Forwards in flight at once.
    #[arg(
        long,
        env = "TASKHOOK_UPSTREAM_CONCURRENCY",
        value_name = "N",
        default_value_t = 16
    )]
    pub(crate) upstream_concurrency: usize,

    /// Attempts per task before it becomes a dead letter.
    #[arg(
        long,
        env = "TASKHOOK_MAX_ATTEMPTS",
        value_name = "N",
        default_value_t = 8
    )]
    pub(crate) max_attempts: u32,

    /// The first retry waits up to this long; each next one twice as long
    /// (full jitter), up to `--retry-max-ms`. An upstream's `Retry-After`
    /// is honoured on top.
    #[arg(
        long,
        env = "TASKHOOK_RETRY_BASE_MS",
        value_name = "MS",
        default_value_t = 500
    )]
    pub(crate) retry_base_ms: u64,

    /// The longest wait between two attempts.
    #[arg(
        long,
        env = "TASKHOOK_RETRY_MAX_MS",
        value_name = "MS",
        default_value_t = 30_000
    )]
    pub(crate) retry_max_ms: u64,

    /// An extra header on every forward, `'Name: value'` (repeatable;
    /// environment: newline separated). Values are never logged.
    #[arg(
        long,
        env = "TASKHOOK_UPSTREAM_HEADER",
        value_name = "HEADER",
        value_delimiter = '\n',
        hide_env_values = true
    )]
    pub(crate) upstream_header: Vec<String>,

    /// The admin listener (health, metrics, dead letters, the on-call
    /// page). A non-loopback address needs `--admin-token`.
    #[arg(
        long,
        env = "TASKHOOK_ADMIN_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:9091"
    )]
    pub(crate) admin_listen: SocketAddr,

    /// The bearer token the admin listener requires when set.
    #[arg(
        long,
        env = "TASKHOOK_ADMIN_TOKEN",
        value_name = "T",
        hide_env_values = true
    )]
    pub(crate) admin_token: Option<String>,

    /// On SIGTERM or SIGINT, how long to drain before exiting.
    #[arg(
        long,
        env = "TASKHOOK_DRAIN_SECS",
        value_name = "SECS",
        default_value_t = 25
    )]
    pub(crate) drain_secs: u64,

    /// Events held at once (journaled, not yet forwarded); more get `503`.
    #[arg(
        long,
        env = "TASKHOOK_QUEUE_CAPACITY",
        value_name = "N",
        default_value_t = 10_000
    )]
    pub(crate) queue_capacity: usize,

    /// The provider that pushes: how its bodies read, which events it sends
    /// per task, how it signs (apimart, replicate, fal, openai,
    /// standard-webhooks, kie, kling, midjourney-proxy).
    #[arg(
        long,
        env = "TASKHOOK_PROVIDER",
        value_name = "NAME",
        default_value = "apimart"
    )]
    pub(crate) provider: String,

    /// The secret the provider signs with, checked on every push:
    /// Standard Webhooks `whsec_...` (v1) or `whpk_...` (v1a public key)
    /// for replicate, openai and standard-webhooks; KIE's webhook key for
    /// kie. Repeatable (rotation). Pushes without a valid signature get
    /// `401`.
    #[arg(
        long,
        env = "TASKHOOK_SIGNING_SECRET",
        value_name = "S",
        value_delimiter = '\n',
        hide_env_values = true
    )]
    pub(crate) signing_secret: Vec<String>,

    /// A static secret header every push must carry (`Name: value`; a
    /// provider that authenticates with a header of your choice).
    #[arg(
        long,
        env = "TASKHOOK_SIGNING_HEADER",
        value_name = "HEADER",
        hide_env_values = true
    )]
    pub(crate) signing_header: Option<String>,

    /// fal: where its public keys are (an http:// JWKS URL; put a TLS proxy
    /// in front of fal's https one), fetched and cached.
    #[arg(
        long,
        env = "TASKHOOK_JWKS_URL",
        value_name = "URL",
        conflicts_with = "jwks_file"
    )]
    pub(crate) jwks_url: Option<String>,

    /// fal: its public keys in a JWKS file, read once (offline use).
    #[arg(long, env = "TASKHOOK_JWKS_FILE", value_name = "FILE")]
    pub(crate) jwks_file: Option<PathBuf>,

    /// fal: your fal user id; pushes signed for another fal user get `401`.
    /// Repeatable.
    #[arg(
        long,
        env = "TASKHOOK_FAL_USER_ID",
        value_name = "ID",
        value_delimiter = ','
    )]
    pub(crate) fal_user_id: Vec<String>,

    /// The log lines on stderr (`RUST_LOG` filters them; default `info`).
    #[arg(long, env = "TASKHOOK_LOG_FORMAT", value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `--journal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum JournalKind {
    /// A redb file in `--data-dir`.
    Redb,
    /// In memory only.
    Memory,
}

/// The `--config` file: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    upstream: Option<String>,
    data_dir: Option<PathBuf>,
    journal: Option<JournalKind>,
    redis: Option<String>,
    path_token: Option<Vec<String>>,
    allow_ip: Option<Vec<String>>,
    trusted_proxy: Option<Vec<String>>,
    upstream_timeout_ms: Option<u64>,
    upstream_concurrency: Option<usize>,
    max_attempts: Option<u32>,
    retry_base_ms: Option<u64>,
    retry_max_ms: Option<u64>,
    upstream_header: Option<Vec<String>>,
    admin_listen: Option<SocketAddr>,
    admin_token: Option<String>,
    drain_secs: Option<u64>,
    queue_capacity: Option<usize>,
    log_format: Option<LogFormat>,
    provider: Option<String>,
    signing_secret: Option<Vec<String>>,
    signing_header: Option<String>,
    jwks_url: Option<String>,
    jwks_file: Option<PathBuf>,
    fal_user_id: Option<Vec<String>>,
}

/// The relay's settings, checked.
#[derive(Debug, Clone)]
pub(crate) struct Relay {
    pub(crate) listen: SocketAddr,
    pub(crate) upstream: Uri,
    pub(crate) data_dir: PathBuf,
    pub(crate) journal: JournalKind,
    pub(crate) redis: Option<String>,
    pub(crate) path_tokens: Vec<PathSecret>,
    pub(crate) allow_ip: Vec<Cidr>,
    pub(crate) trusted_proxies: Vec<Cidr>,
    pub(crate) upstream_timeout: Duration,
    pub(crate) upstream_concurrency: usize,
    pub(crate) max_attempts: u32,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) upstream_headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) admin_listen: SocketAddr,
    pub(crate) admin_token: Option<String>,
    pub(crate) drain: Duration,
    pub(crate) queue_capacity: usize,
    pub(crate) log_format: LogFormat,
    pub(crate) profile: Arc<dyn Profile>,
    pub(crate) signature: Signature,
    pub(crate) signing_header: Option<HeaderSecretLayer>,
}

/// How the relay checks the provider's signature.
#[derive(Debug, Clone)]
pub(crate) enum Signature {
    /// Not at all (an unsigned provider, or no secret given).
    None,
    /// Standard Webhooks, any of these keys.
    StandardWebhooks(Vec<WebhookKey>),
    /// KIE's HMAC, any of these keys.
    Kie(Vec<KieSecret>),
    /// fal's Ed25519 with these keys, for these users (any if empty).
    Fal { jwks: Jwks, user_ids: Vec<String> },
}

/// Where fal's public keys are.
#[derive(Debug, Clone)]
pub(crate) enum Jwks {
    Url(String),
    File(PathBuf),
}

impl RelayArgs {
    /// Fills what neither the command line nor the environment gave from
    /// the `--config` file, then checks everything.
    pub(crate) fn resolve(mut self, matches: &ArgMatches) -> Result<Relay, String> {
        if let Some(path) = self.config.clone() {
            let file = read_file(&path)?;
            self.fill_from(file, matches);
        }
        self.check()
    }

    fn fill_from(&mut self, file: FileConfig, matches: &ArgMatches) {
        // A setting given on the command line or in the environment wins.
        let unset = |id: &str| {
            matches!(
                matches.value_source(id),
                None | Some(ValueSource::DefaultValue)
            )
        };
        macro_rules! fill {
            ($($field:ident),* $(,)?) => {$(
                if let Some(value) = file.$field {
                    if unset(stringify!($field)) {
                        self.$field = value;
                    }
                }
            )*};
        }
        macro_rules! fill_option {
            ($($field:ident),* $(,)?) => {$(
                if file.$field.is_some() && unset(stringify!($field)) {
                    self.$field = file.$field;
                }
            )*};
        }
        fill!(
            listen,
            data_dir,
            journal,
            path_token,
            allow_ip,
            trusted_proxy,
            upstream_timeout_ms,
            upstream_concurrency,
            max_attempts,
            retry_base_ms,
            retry_max_ms,
            upstream_header,
            admin_listen,
            drain_secs,
            queue_capacity,
            log_format,
            provider,
            signing_secret,
            fal_user_id,
        );
        fill_option!(
            upstream,
            redis,
            admin_token,
            signing_header,
            jwks_url,
            jwks_file
        );
    }

    fn check(self) -> Result<Relay, String> {
        let upstream = self.upstream.ok_or(
            "--upstream URL is required (or TASKHOOK_UPSTREAM, or `upstream` in --config)",
        )?;
        let upstream: Uri = upstream
            .parse()
            .map_err(|e| format!("--upstream {upstream:?}: {e}"))?;
        if upstream.scheme_str() != Some("http") || upstream.authority().is_none() {
            return Err(format!(
                "--upstream {upstream}: an http:// URL with a host (put a TLS proxy in front of an https app)"
            ));
        }
        let path_tokens = self
            .path_token
            .iter()
            .map(|t| {
                t.parse::<PathSecret>()
                    .map_err(|e| format!("--path-token: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cidrs = |flag: &str, values: &[String]| {
            values
                .iter()
                .map(|v| v.parse::<Cidr>().map_err(|e| format!("{flag} {v:?}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        let allow_ip = cidrs("--allow-ip", &self.allow_ip)?;
        let trusted_proxies = cidrs("--trusted-proxy", &self.trusted_proxy)?;
        if !trusted_proxies.is_empty() && allow_ip.is_empty() {
            return Err(
                "--trusted-proxy needs --allow-ip (it says whose X-Forwarded-For to believe)"
                    .into(),
            );
        }
        let upstream_headers = self
            .upstream_header
            .iter()
            .filter(|h| !h.trim().is_empty())
            .map(|h| parse_header(h))
            .collect::<Result<Vec<_>, _>>()?;
        if self.upstream_concurrency == 0 || self.max_attempts == 0 || self.queue_capacity == 0 {
            return Err(
                "--upstream-concurrency, --max-attempts and --queue-capacity must be at least 1"
                    .into(),
            );
        }
        if self.upstream_timeout_ms == 0 {
            return Err("--upstream-timeout-ms must be at least 1".into());
        }
        let admin_token = self.admin_token.filter(|t| !t.is_empty());
        if !self.admin_listen.ip().is_loopback() && admin_token.is_none() {
            return Err(format!(
                "--admin-listen {}: not a loopback address; set --admin-token to expose the admin listener",
                self.admin_listen
            ));
        }
        let profile = taskhook::provider::by_name(&self.provider).ok_or_else(|| {
            format!(
                "--provider {:?}: one of {}",
                self.provider,
                taskhook::provider::NAMES.join(", ")
            )
        })?;
        let signature = signature(
            profile.as_ref(),
            &self.signing_secret,
            self.jwks_url,
            self.jwks_file,
            self.fal_user_id,
        )?;
        let signing_header = match &self.signing_header {
            Some(header) if !header.trim().is_empty() => {
                let (name, value) = header
                    .split_once(':')
                    .ok_or("--signing-header: expected 'Name: value'")?;
                let layer = HeaderSecretLayer::header(name.trim(), value.trim())
                    .map_err(|e| format!("--signing-header: {e}"))?;
                Some(layer)
            }
            _ => None,
        };
        Ok(Relay {
            profile,
            signature,
            signing_header,
            listen: self.listen,
            upstream,
            data_dir: self.data_dir,
            journal: self.journal,
            redis: self.redis.filter(|r| !r.is_empty()),
            path_tokens,
            allow_ip,
            trusted_proxies,
            upstream_timeout: Duration::from_millis(self.upstream_timeout_ms),
            upstream_concurrency: self.upstream_concurrency,
            max_attempts: self.max_attempts,
            retry_base: Duration::from_millis(self.retry_base_ms),
            retry_max: Duration::from_millis(self.retry_max_ms.max(self.retry_base_ms)),
            upstream_headers,
            admin_listen: self.admin_listen,
            admin_token,
            drain: Duration::from_secs(self.drain_secs),
            queue_capacity: self.queue_capacity,
            log_format: self.log_format,
        })
    }
}

/// The signature check `profile` needs, from the secrets given.
fn signature(
    profile: &dyn Profile,
    secrets: &[String],
    jwks_url: Option<String>,
    jwks_file: Option<PathBuf>,
    user_ids: Vec<String>,
) -> Result<Signature, String> {
    let secrets: Vec<&String> = secrets.iter().filter(|s| !s.trim().is_empty()).collect();
    let name = profile.name();
    let jwks = match (jwks_url, jwks_file) {
        (Some(url), _) => Some(Jwks::Url(url)),
        (None, Some(file)) => Some(Jwks::File(file)),
        (None, None) => None,
    };
    match profile.authenticity() {
        Authenticity::StandardWebhooks if !secrets.is_empty() => secrets
            .iter()
            .map(|s| WebhookKey::new(s.trim()).map_err(|e| format!("--signing-secret: {e}")))
            .collect::<Result<_, _>>()
            .map(Signature::StandardWebhooks),
        Authenticity::KieHmac if !secrets.is_empty() => secrets
            .iter()
            .map(|s| KieSecret::new(s.trim()).map_err(|e| format!("--signing-secret: {e}")))
            .collect::<Result<_, _>>()
            .map(Signature::Kie),
        Authenticity::FalEd25519 if !secrets.is_empty() => Err(format!(
            "--signing-secret: {name} signs with Ed25519 keys it publishes: give --jwks-url or --jwks-file"
        )),
        Authenticity::FalEd25519 => Ok(jwks.map_or(Signature::None, |jwks| Signature::Fal {
            jwks,
            user_ids,
        })),
        _ if jwks.is_some() => Err(format!(
            "--jwks-url/--jwks-file: only fal's signatures use them, not {name}'s"
        )),
        _ if !secrets.is_empty() => Err(format!(
            "--signing-secret: {name} does not sign its pushes (use --path-token, --allow-ip or --signing-header)"
        )),
        _ => Ok(Signature::None),
    }
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("--config {}: {e}", path.display()))
}

/// `'Name: value'`.
fn parse_header(header: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = header
        .split_once(':')
        .ok_or_else(|| "--upstream-header: expected 'Name: value'".to_owned())?;
    let name: HeaderName = name
        .trim()
        .parse()
        .map_err(|_| format!("--upstream-header: {:?} is not a header name", name.trim()))?;
    let value: HeaderValue = value
        .trim()
        .parse()
        .map_err(|_| format!("--upstream-header {name}: the value is not a valid header value"))?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Test {
        #[command(flatten)]
        relay: RelayArgs,
    }

    fn resolve(args: &[&str]) -> Result<Relay, String> {
        let matches = Test::command()
            .try_get_matches_from(std::iter::once("relay").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        let parsed = Test::from_arg_matches(&matches).map_err(|e| e.to_string())?;
        parsed.relay.resolve(&matches)
    }

    fn file(text: &str) -> tempfile_path::TempFile {
        tempfile_path::TempFile::new(text)
    }

    /// A file removed on drop (std only).
    mod tempfile_path {
        use std::path::PathBuf;
        use std::sync::atomic::{AtomicU32, Ordering};

        pub(super) struct TempFile(pub(super) PathBuf);

        impl TempFile {
            pub(super) fn new(text: &str) -> Self {
                static NEXT: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "taskhook-config-{}-{}.toml",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::write(&path, text).unwrap();
                Self(path)
            }
            pub(super) fn arg(&self) -> &str {
                self.0.to_str().unwrap()
            }
        }

        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn defaults_and_the_required_upstream() {
        let relay = resolve(&["--upstream", "http://127.0.0.1:8000/callback"]).unwrap();
        assert_eq!(relay.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(relay.admin_listen, "127.0.0.1:9091".parse().unwrap());
        assert_eq!(relay.upstream_timeout, Duration::from_secs(30));
        assert_eq!(relay.upstream_concurrency, 16);
        assert_eq!(relay.max_attempts, 8);
        assert_eq!(relay.data_dir, PathBuf::from("./taskhook-data"));
        assert!(resolve(&[])
            .unwrap_err()
            .contains("--upstream URL is required"));
    }

    #[test]
    fn the_file_fills_what_the_command_line_does_not_give() {
        let config = file(
            "upstream = \"http://127.0.0.1:9/x\"\nmax-attempts = 3\nlisten = \"127.0.0.1:7000\"\npath-token = [\"k3Qm9x_T2vLr8pZa\", \"n3w-s3cret-9876543210\"]\nupstream-header = [\"Authorization: Bearer abc\"]\n",
        );
        let relay = resolve(&["--config", config.arg(), "--listen", "127.0.0.1:7001"]).unwrap();
        assert_eq!(relay.upstream, "http://127.0.0.1:9/x");
        assert_eq!(relay.max_attempts, 3);
        assert_eq!(
            relay.listen,
            "127.0.0.1:7001".parse().unwrap(),
            "the command line wins"
        );
        assert_eq!(relay.path_tokens.len(), 2);
        assert_eq!(relay.upstream_headers[0].0, "authorization");
        assert_eq!(relay.upstream_headers[0].1, "Bearer abc");
    }

    #[test]
    fn a_typo_in_the_file_is_refused() {
        let config = file("upstream = \"http://127.0.0.1:9/\"\nmax-attempt = 3\n");
        let error = resolve(&["--config", config.arg()]).unwrap_err();
        assert!(error.contains("max-attempt"), "{error}");
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let up = ["--upstream", "http://127.0.0.1:8000/"];
        let cases: &[(&[&str], &str)] = &[
            (&["--upstream", "https://example.com/"], "--upstream"),
            (&["--upstream", "not a url"], "--upstream"),
            (&[up[0], up[1], "--path-token", "short"], "--path-token"),
            (&[up[0], up[1], "--allow-ip", "10.0.0.0/99"], "--allow-ip"),
            (
                &[up[0], up[1], "--trusted-proxy", "10.0.0.1"],
                "--trusted-proxy",
            ),
            (
                &[up[0], up[1], "--upstream-header", "no colon"],
                "--upstream-header",
            ),
            (&[up[0], up[1], "--max-attempts", "0"], "--max-attempts"),
            (
                &[up[0], up[1], "--admin-listen", "0.0.0.0:9091"],
                "--admin-token",
            ),
        ];
        for (args, flag) in cases {
            let error = resolve(args).unwrap_err();
            assert!(error.contains(flag), "{args:?}: {error}");
        }
        // A public admin listener with a token is fine.
        resolve(&[
            up[0],
            up[1],
            "--admin-listen",
            "0.0.0.0:0",
            "--admin-token",
            "t0ken",
        ])
        .unwrap();
    }
}
