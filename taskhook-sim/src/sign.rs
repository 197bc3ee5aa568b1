//! Signatures: the providers' formats as small functions (for a receiver's
//! own tests), and [`Signing`], the scheme a [`Simulator`](crate::Simulator)
//! applies to every attempt.
//!
//! | Scheme | Headers | Signed content | Function |
//! |---|---|---|---|
//! | Standard Webhooks `v1` (Replicate, OpenAI, ...) | `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>` | `{id}.{timestamp}.{body}`, HMAC-SHA256 | [`standard_webhooks_v1`] |
//! | Standard Webhooks `v1a` | the same, `v1a,<base64>` | the same, Ed25519 | [`standard_webhooks_v1a`] |
//! | fal | `X-Fal-Webhook-Request-Id`, `-User-Id`, `-Timestamp`, `-Signature` (hex) | `{request_id}\n{user_id}\n{timestamp}\n{hex(sha256(body))}`, Ed25519 | [`fal`], [`fal_message`] |
//! | KIE | `X-Webhook-Timestamp`, `X-Webhook-Signature` (base64) | `{taskId}.{timestamp}`, HMAC-SHA256 (the body is not covered) | [`kie`] |
//! | A static header | the name and value you choose | | [`Signing::header`] |
//!
//! Timestamps are Unix seconds. Ed25519 keys are made from a 32-byte seed,
//! so a test's keys (and signatures) are the same every run. A Standard
//! Webhooks `whsk_` secret key is the base64 of that seed, as the spec
//! repository's Go library reads it (a 64-byte seed-and-public-key pair is
//! accepted too).
//!
//! ```
//! use taskhook_sim::sign;
//!
//! // The Standard Webhooks libraries' test vector.
//! let key = sign::decode_standard_webhooks_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
//! let signature = sign::standard_webhooks_v1(
//!     &key,
//!     "msg_p5jXN8AQM9LWM0D4loKWxJek",
//!     1614265330,
//!     br#"{"test": 2432232314}"#,
//! );
//! assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//! # Ok::<(), taskhook_sim::sign::InvalidSigning>(())
//! ```

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, Mac};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The prefix of a Standard Webhooks symmetric secret.
const SECRET_PREFIX: &str = "whsec_";
/// The prefix of a Standard Webhooks Ed25519 secret key.
const SECRET_KEY_PREFIX: &str = "whsk_";
/// The prefix of a Standard Webhooks Ed25519 public key.
const PUBLIC_KEY_PREFIX: &str = "whpk_";

/// HMAC-SHA256 of `parts`, concatenated.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length: `new_from_slice` never fails for it.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return [0; 32];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 15)]));
    }
    text
}

/// The Standard Webhooks `v1` signature: `v1,` and the base64 of
/// HMAC-SHA256(`key`, `{id}.{timestamp}.{body}`), `key` the decoded secret
/// ([`decode_standard_webhooks_secret`]).
///
/// ```
/// use taskhook_sim::sign;
///
/// let signature = sign::standard_webhooks_v1(b"0123456789abcdef01234567", "msg_1", 1765000000, b"{}");
/// assert!(signature.starts_with("v1,"));
/// ```
pub fn standard_webhooks_v1(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let mac = hmac_sha256(
        key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    format!("v1,{}", STANDARD.encode(mac))
}

/// The Standard Webhooks `v1a` signature: `v1a,` and the base64 of the
/// Ed25519 signature of `{id}.{timestamp}.{body}` with the key made from
/// `seed`.
///
/// ```
/// use taskhook_sim::sign;
///
/// // The test vector of the spec repository's Go library.
/// let seed = sign::decode_standard_webhooks_secret_key("VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=")?;
/// let signature = sign::standard_webhooks_v1a(
///     &seed,
///     "msg_p5jXN8AQM9LWM0D4loKWxJek",
///     1614265330,
///     br#"{"test": 2432232314}"#,
/// );
/// assert_eq!(
///     signature,
///     "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag=="
/// );
/// # Ok::<(), taskhook_sim::sign::InvalidSigning>(())
/// ```
pub fn standard_webhooks_v1a(seed: &[u8; 32], id: &str, timestamp: u64, body: &[u8]) -> String {
    v1a(&SigningKey::from_bytes(seed), id, timestamp, body)
}

fn v1a(key: &SigningKey, id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut content = Vec::with_capacity(id.len() + body.len() + 24);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.to_string().as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    format!("v1a,{}", STANDARD.encode(key.sign(&content).to_bytes()))
}

/// The message fal signs: the request id, the user id, the timestamp and
/// the hex SHA-256 of the body, one per line (no final newline).
///
/// ```
/// use taskhook_sim::sign;
///
/// let message = sign::fal_message("req_1", "user_1", 1765000000, b"");
/// assert_eq!(
///     message,
///     "req_1\nuser_1\n1765000000\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// ```
pub fn fal_message(request_id: &str, user_id: &str, timestamp: u64, body: &[u8]) -> String {
    format!(
        "{request_id}\n{user_id}\n{timestamp}\n{}",
        hex(&Sha256::digest(body))
    )
}

/// fal's `X-Fal-Webhook-Signature`: the hex of the Ed25519 signature of
/// [`fal_message`] with the key made from `seed`.
///
/// ```
/// use taskhook_sim::sign;
///
/// let signature = sign::fal(&[7; 32], "req_1", "user_1", 1765000000, b"{}");
/// assert_eq!(signature.len(), 128);
/// ```
pub fn fal(
    seed: &[u8; 32],
    request_id: &str,
    user_id: &str,
    timestamp: u64,
    body: &[u8],
) -> String {
    fal_with(
        &SigningKey::from_bytes(seed),
        request_id,
        user_id,
        timestamp,
        body,
    )
}

fn fal_with(
    key: &SigningKey,
    request_id: &str,
    user_id: &str,
    timestamp: u64,
    body: &[u8],
) -> String {
    let message = fal_message(request_id, user_id, timestamp, body);
    hex(&key.sign(message.as_bytes()).to_bytes())
}

/// KIE's `X-Webhook-Signature`: the base64 of HMAC-SHA256(`key`,
/// `{task_id}.{timestamp}`), `key` the account's webhook HMAC key as
/// written (its bytes). The body is not covered.
///
/// ```
/// use taskhook_sim::sign;
///
/// let signature = sign::kie(b"my-hmac-key", "ee603959debb48d08f3c0ee6d2e3b1e8", 1765000000);
/// assert_eq!(signature.len(), 44);
/// ```
pub fn kie(key: &[u8], task_id: &str, timestamp: u64) -> String {
    let timestamp = timestamp.to_string();
    STANDARD.encode(hmac_sha256(
        key,
        &[task_id.as_bytes(), b".", timestamp.as_bytes()],
    ))
}

/// The Ed25519 public key of the key made from `seed`.
///
/// ```
/// use taskhook_sim::sign;
///
/// assert_eq!(sign::ed25519_public_key(&[7; 32]), sign::ed25519_public_key(&[7; 32]));
/// assert_ne!(sign::ed25519_public_key(&[7; 32]), sign::ed25519_public_key(&[8; 32]));
/// ```
pub fn ed25519_public_key(seed: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(seed).verifying_key().to_bytes()
}

/// A JSON Web Key Set holding one Ed25519 public key, as a fal-style
/// `/.well-known/jwks.json` serves it:
/// `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"<base64url>","kid":"<kid>"}]}`.
///
/// ```
/// use taskhook_sim::sign;
///
/// let jwks = sign::jwks(&sign::ed25519_public_key(&[7; 32]), "sim-1");
/// assert!(jwks.starts_with(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":""#));
/// ```
pub fn jwks(public_key: &[u8; 32], kid: &str) -> String {
    // Written out rather than through `serde_json::Value`, whose key order
    // depends on a feature: the members stay in the order of RFC 8037's
    // examples.
    let kid = serde_json::Value::from(kid);
    format!(
        r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{}","kid":{kid}}}]}}"#,
        URL_SAFE_NO_PAD.encode(public_key)
    )
}

/// Decodes a Standard Webhooks secret: `whsec_` (optional) and the base64 of
/// the HMAC key.
///
/// # Errors
///
/// Not base64, or an empty key.
///
/// ```
/// use taskhook_sim::sign;
///
/// assert_eq!(sign::decode_standard_webhooks_secret("whsec_a2V5")?, b"key");
/// assert!(sign::decode_standard_webhooks_secret("whsec_!!").is_err());
/// # Ok::<(), taskhook_sim::sign::InvalidSigning>(())
/// ```
pub fn decode_standard_webhooks_secret(secret: &str) -> Result<Vec<u8>, InvalidSigning> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret).trim();
    let key = STANDARD
        .decode(encoded)
        .map_err(|e| InvalidSigning(format!("a `whsec_` secret must be base64: {e}")))?;
    if key.is_empty() {
        return Err(InvalidSigning("an empty `whsec_` secret".to_owned()));
    }
    Ok(key)
}

/// Decodes a Standard Webhooks Ed25519 secret key into its seed: `whsk_`
/// (optional) and the base64 of the 32-byte seed, or of the 64-byte pair of
/// the seed and its public key (which must match).
///
/// # Errors
///
/// Not base64, another length, or a pair whose public key is not the
/// seed's.
///
/// ```
/// use base64::Engine;
/// use taskhook_sim::sign;
///
/// let encoded = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
/// assert_eq!(sign::decode_standard_webhooks_secret_key(&format!("whsk_{encoded}"))?, [7; 32]);
/// assert!(sign::decode_standard_webhooks_secret_key("whsk_a2V5").is_err());
/// # Ok::<(), taskhook_sim::sign::InvalidSigning>(())
/// ```
pub fn decode_standard_webhooks_secret_key(secret_key: &str) -> Result<[u8; 32], InvalidSigning> {
    let encoded = secret_key
        .strip_prefix(SECRET_KEY_PREFIX)
        .unwrap_or(secret_key)
        .trim();
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|e| InvalidSigning(format!("a `whsk_` key must be base64: {e}")))?;
    let (seed, public) = match bytes.len() {
        32 => (&bytes[..], None),
        64 => (&bytes[..32], Some(&bytes[32..])),
        n => {
            return Err(InvalidSigning(format!(
                "a `whsk_` key is 32 bytes (or 64 with its public key), not {n}"
            )))
        }
    };
    let mut out = [0; 32];
    out.copy_from_slice(seed);
    if let Some(public) = public {
        if public != ed25519_public_key(&out) {
            return Err(InvalidSigning(
                "the public half of the `whsk_` key is not its seed's".to_owned(),
            ));
        }
    }
    Ok(out)
}

/// A signature configuration that cannot be used: a secret that does not
/// decode, a header name or value HTTP does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSigning(String);

impl fmt::Display for InvalidSigning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid signing configuration: {}", self.0)
    }
}

impl std::error::Error for InvalidSigning {}

/// How every attempt is signed: the headers added to each request, with the
/// timestamp of that attempt.
///
/// Given to a [`Simulator`](crate::Simulator) with
/// [`signing`](crate::Simulator::signing); independent of the
/// [`Provider`](crate::Provider) (so a generic receiver can be tested with
/// any scheme), though each provider has its own:
///
/// - [`standard_webhooks_secret`](Self::standard_webhooks_secret) (Replicate,
///   OpenAI, the generic Standard Webhooks sender) and
///   [`standard_webhooks_ed25519`](Self::standard_webhooks_ed25519) (`v1a`);
/// - [`fal`](Self::fal), with [`jwks`](Self::jwks) for the receiver;
/// - [`kie`](Self::kie);
/// - [`header`](Self::header), a static secret header;
/// - [`none`](Self::none), the default: no header at all (APIMart, Kling
///   and midjourney-proxy sign nothing).
///
/// The Standard Webhooks `webhook-id` is the event's
/// ([`Task::webhook_id`](crate::Task::webhook_id)): the same for every
/// attempt and duplicate of one event, another for each event of a task.
/// fal's request id and KIE's `taskId` are the task's id.
///
/// Its `Debug` output shows the scheme, never a key.
///
/// ```
/// use taskhook_sim::{Provider, Signing, Simulator};
///
/// let simulator = Simulator::new()
///     .provider(Provider::Replicate)
///     .signing(Signing::standard_webhooks_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?);
///
/// let signing = Signing::fal([7; 32], "user_sim");
/// let jwks = signing.jwks().expect("an Ed25519 scheme");
/// assert!(jwks.contains(r#""crv":"Ed25519""#));
/// assert_eq!(format!("{signing:?}"), "Signing::Fal { user_id: \"user_sim\", .. }");
/// # Ok::<(), taskhook_sim::sign::InvalidSigning>(())
/// ```
#[derive(Clone, Default)]
pub struct Signing {
    scheme: Scheme,
}

#[derive(Clone, Default)]
enum Scheme {
    #[default]
    None,
    StandardWebhooks(Arc<[u8]>),
    StandardWebhooksEd25519(Box<SigningKey>),
    Fal {
        key: Box<SigningKey>,
        user_id: String,
    },
    Kie(Arc<[u8]>),
    Header(HeaderName, HeaderValue),
}

impl Signing {
    /// No signature headers (the default).
    pub fn none() -> Self {
        Self::default()
    }

    /// Standard Webhooks `v1` (HMAC-SHA256) with a `whsec_<base64>` secret
    /// (the prefix is optional).
    ///
    /// # Errors
    ///
    /// The secret is not base64, or empty.
    ///
    /// ```
    /// use taskhook_sim::Signing;
    ///
    /// let signing = Signing::standard_webhooks_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
    /// assert!(Signing::standard_webhooks_secret("whsec_not base64!").is_err());
    /// # Ok::<(), taskhook_sim::sign::InvalidSigning>(())
    /// ```
    pub fn standard_webhooks_secret(secret: &str) -> Result<Self, InvalidSigning> {
        let key = decode_standard_webhooks_secret(secret)?;
        Ok(Self {
            scheme: Scheme::StandardWebhooks(key.into()),
        })
    }

    /// Standard Webhooks `v1a` (Ed25519) with a `whsk_<base64>` secret key
    /// (see [`decode_standard_webhooks_secret_key`]).
    ///
    /// # Errors
    ///
    /// The key does not decode to a seed.
    ///
    /// ```
    /// use taskhook_sim::Signing;
    ///
    /// let signing = Signing::standard_webhooks_ed25519("whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=")?;
    /// assert!(signing.standard_webhooks_public_key().unwrap().starts_with("whpk_"));
    /// # Ok::<(), taskhook_sim::sign::InvalidSigning>(())
    /// ```
    pub fn standard_webhooks_ed25519(secret_key: &str) -> Result<Self, InvalidSigning> {
        Ok(Self::standard_webhooks_ed25519_seed(
            decode_standard_webhooks_secret_key(secret_key)?,
        ))
    }

    /// Standard Webhooks `v1a` (Ed25519) with the key made from `seed`.
    ///
    /// ```
    /// use taskhook_sim::Signing;
    ///
    /// let signing = Signing::standard_webhooks_ed25519_seed([7; 32]);
    /// ```
    pub fn standard_webhooks_ed25519_seed(seed: [u8; 32]) -> Self {
        Self {
            scheme: Scheme::StandardWebhooksEd25519(Box::new(SigningKey::from_bytes(&seed))),
        }
    }

    /// fal's Ed25519 signature with the key made from `seed`, for the
    /// account `user_id` (sent as `X-Fal-Webhook-User-Id`). The request id
    /// is the task's.
    ///
    /// ```
    /// use taskhook_sim::Signing;
    ///
    /// let signing = Signing::fal([7; 32], "user_sim");
    /// ```
    pub fn fal(seed: [u8; 32], user_id: impl Into<String>) -> Self {
        Self {
            scheme: Scheme::Fal {
                key: Box::new(SigningKey::from_bytes(&seed)),
                user_id: user_id.into(),
            },
        }
    }

    /// KIE's HMAC-SHA256 over `{taskId}.{timestamp}` with the account's
    /// webhook HMAC key (its bytes as written).
    ///
    /// ```
    /// use taskhook_sim::Signing;
    ///
    /// let signing = Signing::kie("my-hmac-key");
    /// ```
    pub fn kie(key: impl AsRef<[u8]>) -> Self {
        Self {
            scheme: Scheme::Kie(key.as_ref().into()),
        }
    }

    /// A static header on every request (AssemblyAI-style: a header name
    /// and secret of the user's choice).
    ///
    /// # Errors
    ///
    /// A name or value HTTP does not allow.
    ///
    /// ```
    /// use taskhook_sim::Signing;
    ///
    /// let signing = Signing::header("x-auth", "s3cr3t")?;
    /// assert!(Signing::header("bad name", "v").is_err());
    /// # Ok::<(), taskhook_sim::sign::InvalidSigning>(())
    /// ```
    pub fn header(name: &str, value: &str) -> Result<Self, InvalidSigning> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| InvalidSigning(format!("header name `{name}`: {e}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| InvalidSigning(format!("value of header `{name}`: {e}")))?;
        Ok(Self {
            scheme: Scheme::Header(name, value),
        })
    }

    /// Whether this adds no header ([`none`](Self::none)).
    pub fn is_none(&self) -> bool {
        matches!(self.scheme, Scheme::None)
    }

    /// The Ed25519 public key of an Ed25519 scheme (`v1a`, fal).
    ///
    /// ```
    /// use taskhook_sim::{sign, Signing};
    ///
    /// assert_eq!(Signing::fal([7; 32], "u").public_key(), Some(sign::ed25519_public_key(&[7; 32])));
    /// assert_eq!(Signing::none().public_key(), None);
    /// ```
    pub fn public_key(&self) -> Option<[u8; 32]> {
        match &self.scheme {
            Scheme::StandardWebhooksEd25519(key) | Scheme::Fal { key, .. } => {
                Some(key.verifying_key().to_bytes())
            }
            _ => None,
        }
    }

    /// The `whpk_<base64>` public key of a `v1a` scheme, for the receiver.
    pub fn standard_webhooks_public_key(&self) -> Option<String> {
        match &self.scheme {
            Scheme::StandardWebhooksEd25519(key) => Some(format!(
                "{PUBLIC_KEY_PREFIX}{}",
                STANDARD.encode(key.verifying_key().to_bytes())
            )),
            _ => None,
        }
    }

    /// The public key of an Ed25519 scheme as a JWKS ([`jwks`]), for a
    /// receiver that fetches fal's keys: serve it, or load it in the test.
    /// Its `kid` is [`key_id`](Self::key_id).
    pub fn jwks(&self) -> Option<String> {
        let public = self.public_key()?;
        Some(jwks(&public, &key_id(&public)))
    }

    /// The key id of an Ed25519 scheme's public key in [`jwks`](Self::jwks):
    /// `sim-` and the first 8 bytes of its SHA-256, in hex.
    pub fn key_id(&self) -> Option<String> {
        self.public_key().map(|public| key_id(&public))
    }

    /// The headers this scheme adds to a request carrying `body` for the
    /// task `task_id`, as the event `webhook_id`, sent at `timestamp` (Unix
    /// seconds). Empty for [`none`](Self::none). A task id that is not a
    /// valid header value (possible only with [`Task::new`](crate::Task::new))
    /// leaves out the header that would carry it.
    ///
    /// ```
    /// use taskhook_sim::Signing;
    ///
    /// let signing = Signing::kie("my-hmac-key");
    /// let headers = signing.headers("task_1", "msg_1", 1765000000, b"{}");
    /// assert_eq!(headers["x-webhook-timestamp"], "1765000000");
    /// assert!(headers.contains_key("x-webhook-signature"));
    /// ```
    pub fn headers(
        &self,
        task_id: &str,
        webhook_id: &str,
        timestamp: u64,
        body: &[u8],
    ) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        match &self.scheme {
            Scheme::None => {}
            Scheme::StandardWebhooks(key) => {
                put("webhook-id", webhook_id);
                put("webhook-timestamp", &timestamp.to_string());
                put(
                    "webhook-signature",
                    &standard_webhooks_v1(key, webhook_id, timestamp, body),
                );
            }
            Scheme::StandardWebhooksEd25519(key) => {
                put("webhook-id", webhook_id);
                put("webhook-timestamp", &timestamp.to_string());
                put("webhook-signature", &v1a(key, webhook_id, timestamp, body));
            }
            Scheme::Fal { key, user_id } => {
                put("x-fal-webhook-request-id", task_id);
                put("x-fal-webhook-user-id", user_id);
                put("x-fal-webhook-timestamp", &timestamp.to_string());
                put(
                    "x-fal-webhook-signature",
                    &fal_with(key, task_id, user_id, timestamp, body),
                );
            }
            Scheme::Kie(key) => {
                put("x-webhook-timestamp", &timestamp.to_string());
                put("x-webhook-signature", &kie(key, task_id, timestamp));
            }
            Scheme::Header(name, value) => {
                headers.insert(name.clone(), value.clone());
            }
        }
        headers
    }
}

fn key_id(public: &[u8; 32]) -> String {
    format!("sim-{}", hex(&Sha256::digest(public)[..8]))
}

impl fmt::Debug for Signing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scheme {
            Scheme::None => f.write_str("Signing::None"),
            Scheme::StandardWebhooks(_) => f.write_str("Signing::StandardWebhooks(<redacted>)"),
            Scheme::StandardWebhooksEd25519(_) => {
                f.write_str("Signing::StandardWebhooksEd25519(<redacted>)")
            }
            Scheme::Fal { user_id, .. } => write!(f, "Signing::Fal {{ user_id: {user_id:?}, .. }}"),
            Scheme::Kie(_) => f.write_str("Signing::Kie(<redacted>)"),
            Scheme::Header(name, _) => write!(f, "Signing::Header({name}: <redacted>)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_and_two_digits_a_byte() {
        assert_eq!(hex(&[0, 15, 16, 255]), "000f10ff");
    }

    #[test]
    fn a_keypair_secret_key_must_match_its_seed() {
        let seed = [9u8; 32];
        let mut pair = seed.to_vec();
        pair.extend_from_slice(&ed25519_public_key(&seed));
        let encoded = STANDARD.encode(&pair);
        assert_eq!(
            decode_standard_webhooks_secret_key(&format!("whsk_{encoded}")),
            Ok(seed)
        );
        pair[40] ^= 1;
        assert!(decode_standard_webhooks_secret_key(&STANDARD.encode(&pair)).is_err());
    }
}
