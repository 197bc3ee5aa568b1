//! The 128-bit keyed hash under which the in-process stores remember ids.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

use siphasher::sip128::{Hasher128, SipHasher13};

/// SipHash-1-3 with a 128-bit output (the `siphasher` crate) under a secret
/// key drawn per store: one pass over the id gives the 128 bits a store
/// keeps instead of the id. Two distinct ids collide with probability about
/// n² / 2¹²⁹, and the secret key keeps a sender from forging a collision.
#[derive(Clone, Copy)]
pub(crate) struct KeyHasher {
    k0: u64,
    k1: u64,
}

impl KeyHasher {
    /// A key drawn from the standard library's per-process random seed.
    pub(crate) fn random() -> Self {
        let state = RandomState::new();
        Self {
            k0: state.hash_one(0x5349_5030_u64),
            k1: state.hash_one(0x5349_5031_u64),
        }
    }

    /// The 128-bit hash of `bytes` as two halves.
    pub(crate) fn hash128(self, bytes: &[u8]) -> (u64, u64) {
        let mut hasher = SipHasher13::new_with_keys(self.k0, self.k1);
        hasher.write(bytes);
        let hash = hasher.finish128();
        (hash.h1, hash.h2)
    }
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHasher(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_128_bit_hash_depends_on_the_key_and_every_byte() {
        let a = KeyHasher { k0: 1, k1: 2 };
        let b = KeyHasher { k0: 1, k1: 3 };
        let id = b"task_01KA040M0HP1GJWBJYZMKX1XS1";
        assert_ne!(a.hash128(id), b.hash128(id));
        let (hi, lo) = a.hash128(id);
        assert_ne!(hi, lo);
        for i in 0..id.len() {
            let mut other = *id;
            other[i] ^= 1;
            assert_ne!(a.hash128(&other), a.hash128(id), "byte {i}");
        }
        assert_ne!(a.hash128(b""), a.hash128(b"\0"));
    }
}
