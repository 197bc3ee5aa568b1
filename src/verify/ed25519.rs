//! Ed25519 keys: [`WebhookPublicKey`] (a receiver verifies with it:
//! Standard Webhooks `whpk_`, fal's JWKS keys) and [`WebhookSigningKey`] (a
//! sender signs with it: Standard Webhooks `whsk_`, for tests and
//! simulators).

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// The prefix of a Standard Webhooks Ed25519 public key.
pub(crate) const PUBLIC_PREFIX: &str = "whpk_";

/// The prefix of a Standard Webhooks Ed25519 secret key.
pub(crate) const SECRET_PREFIX: &str = "whsk_";

/// An Ed25519 public key that verifies webhook signatures: a Standard
/// Webhooks `whpk_` key (`v1a` signatures), or one of fal's keys (from its
/// JWKS).
///
/// A public key is not a secret: `Debug` and `Display` show it as
/// `whpk_<base64>`.
///
/// ```
/// use taskhook::verify::WebhookPublicKey;
///
/// // RFC 8032, test 1.
/// let key = WebhookPublicKey::new("whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")?;
/// assert_eq!(key.to_string(), "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
/// assert_eq!(key, WebhookPublicKey::from_base64url("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")?);
/// assert!(WebhookPublicKey::new("whpk_c2hvcnQ=").is_err());
/// # Ok::<(), taskhook::verify::InvalidWebhookKey>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WebhookPublicKey {
    key: VerifyingKey,
}

impl WebhookPublicKey {
    /// Decodes `whpk_<base64>` (the prefix is optional), the base64 of the
    /// 32-byte public key.
    pub fn new(key: &str) -> Result<Self, InvalidWebhookKey> {
        let encoded = key.trim();
        let encoded = encoded.strip_prefix(PUBLIC_PREFIX).unwrap_or(encoded);
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| InvalidWebhookKey::Malformed)?;
        Self::from_slice(&bytes)
    }

    /// Decodes the unpadded base64url of the 32-byte key, as a JWK's `x`
    /// carries it (trailing `=` are tolerated).
    pub fn from_base64url(x: &str) -> Result<Self, InvalidWebhookKey> {
        let bytes = URL_SAFE_NO_PAD
            .decode(x.trim().trim_end_matches('='))
            .map_err(|_| InvalidWebhookKey::Malformed)?;
        Self::from_slice(&bytes)
    }

    /// The key from its 32 bytes; refused if they are not a point of the
    /// curve.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, InvalidWebhookKey> {
        VerifyingKey::from_bytes(bytes)
            .map(|key| Self { key })
            .map_err(|_| InvalidWebhookKey::Malformed)
    }

    fn from_slice(bytes: &[u8]) -> Result<Self, InvalidWebhookKey> {
        let bytes: &[u8; 32] = bytes.try_into().map_err(|_| InvalidWebhookKey::Malformed)?;
        Self::from_bytes(bytes)
    }

    /// The 32 bytes of the key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The unpadded base64url of the key, as a JWK's `x` carries it.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.as_bytes())
    }

    /// Whether `signature` is this key's signature of `message` (strict
    /// verification: non-canonical signatures and weak keys are refused).
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.key
            .verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    }
}

impl FromStr for WebhookPublicKey {
    type Err = InvalidWebhookKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for WebhookPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", STANDARD.encode(self.key.as_bytes()))
    }
}

impl fmt::Debug for WebhookPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookPublicKey({self})")
    }
}

/// An Ed25519 secret key that signs webhooks, as a sender holds it: a
/// Standard Webhooks `whsk_` key. For tests and simulators; a receiver
/// needs only the [`public_key`](Self::public_key).
///
/// `whsk_` is followed by the base64 of the 32-byte seed, or of the 64
/// bytes of seed and public key (libsodium's layout; the public half must
/// match the seed). Its `Debug` output is redacted.
///
/// ```
/// use taskhook::verify::WebhookSigningKey;
///
/// let key = WebhookSigningKey::from_seed(&[7; 32]);
/// assert_eq!(format!("{key:?}"), "WebhookSigningKey(<redacted>)");
/// let signature = key.sign("msg_1", 1614265330, br#"{"id":"task_01"}"#);
/// assert!(signature.starts_with("v1a,"));
/// let again = WebhookSigningKey::new(&key.expose_secret())?;
/// assert_eq!(again.public_key(), key.public_key());
/// # Ok::<(), taskhook::verify::InvalidWebhookKey>(())
/// ```
#[derive(Clone)]
pub struct WebhookSigningKey {
    key: SigningKey,
}

impl WebhookSigningKey {
    /// Decodes `whsk_<base64>` (the prefix is optional).
    pub fn new(key: &str) -> Result<Self, InvalidWebhookKey> {
        let encoded = key.trim();
        let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| InvalidWebhookKey::Malformed)?;
        if let Ok(seed) = <&[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(Self::from_seed(seed));
        }
        let pair: &[u8; 64] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| InvalidWebhookKey::Malformed)?;
        SigningKey::from_keypair_bytes(pair)
            .map(|key| Self { key })
            .map_err(|_| InvalidWebhookKey::Malformed)
    }

    /// The key of a 32-byte seed (the RFC 8032 secret key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The public key that verifies this key's signatures: give it to the
    /// receiver.
    pub fn public_key(&self) -> WebhookPublicKey {
        WebhookPublicKey {
            key: self.key.verifying_key(),
        }
    }

    /// The `v1a,<base64>` Standard Webhooks signature of a message, as a
    /// sender puts it in `webhook-signature`: Ed25519 over
    /// `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let message = super::signature::signed_content(id, &timestamp.to_string(), body);
        format!("v1a,{}", STANDARD.encode(self.sign_bytes(&message)))
    }

    /// The Ed25519 signature of `message`.
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// `whsk_<base64 of the 32-byte seed>`: the secret itself, for a test or
    /// a simulator to hand to another process (a method, not `Display`, so
    /// that no `{}` prints it by accident).
    pub fn expose_secret(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(self.key.as_bytes()))
    }
}

impl fmt::Debug for WebhookSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSigningKey(<redacted>)")
    }
}

/// A string that is not a webhook key. Never contains the key.
///
/// ```
/// use taskhook::verify::{InvalidWebhookKey, WebhookKey, WebhookSigningKey};
///
/// assert_eq!(WebhookKey::new("whpk_c2hvcnQ=").unwrap_err(), InvalidWebhookKey::Malformed);
/// let sender = WebhookSigningKey::from_seed(&[7; 32]).expose_secret(); // "whsk_..."
/// assert_eq!(WebhookKey::new(&sender).unwrap_err(), InvalidWebhookKey::SigningKey);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidWebhookKey {
    /// Not the base64 of a key of the expected length (`whsec_`: at least
    /// one byte; `whpk_`: 32 bytes that are a point of the curve; `whsk_`:
    /// 32 or 64 bytes).
    Malformed,
    /// A `whsk_` secret key where a receiver's key was expected: the secret
    /// key belongs to the sender; give the receiver its `whpk_` public key.
    SigningKey,
}

impl fmt::Display for InvalidWebhookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => {
                "not a webhook key (`whsec_` or `whpk_` followed by the base64 of the key)"
            }
            Self::SigningKey => {
                "a `whsk_` secret key belongs to the sender: give the receiver the `whpk_` public key"
            }
        })
    }
}

impl std::error::Error for InvalidWebhookKey {}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032, 7.1, test 1: the public key of a seed.
    #[test]
    fn rfc8032_key_pair() {
        let seed = [
            0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec,
            0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03,
            0x1c, 0xae, 0x7f, 0x60,
        ];
        let key = WebhookSigningKey::from_seed(&seed);
        assert_eq!(
            key.public_key().to_string(),
            "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
        );
        // The 64-byte layout with a public half that is not the seed's.
        let mut pair = [0u8; 64];
        pair[..32].copy_from_slice(&seed);
        pair[32..].copy_from_slice(
            &WebhookSigningKey::from_seed(&[1; 32])
                .public_key()
                .to_bytes(),
        );
        let encoded = format!("whsk_{}", STANDARD.encode(pair));
        assert!(WebhookSigningKey::new(&encoded).is_err());
        pair[32..].copy_from_slice(&key.public_key().to_bytes());
        let encoded = format!("whsk_{}", STANDARD.encode(pair));
        assert_eq!(
            WebhookSigningKey::new(&encoded).unwrap().public_key(),
            key.public_key()
        );
    }
}
