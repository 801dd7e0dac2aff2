//! Tokens and claim secrets: random, shown once, stored only as hashes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every token starts with this (docs/API.md).
pub const TOKEN_PREFIX: &str = "p4p_";
/// Claim secrets are told apart from tokens by their prefix.
pub const CLAIM_PREFIX: &str = "p4pclaim_";

/// A secret handed to a client once. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A new bearer token: 256 random bits.
    pub fn new_token() -> Secret {
        Secret::random(TOKEN_PREFIX)
    }

    /// A new claim secret for a pledge: 256 random bits.
    pub fn new_claim() -> Secret {
        Secret::random(CLAIM_PREFIX)
    }

    fn random(prefix: &str) -> Secret {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Secret(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Wraps a secret a client presented.
    pub fn presented(value: &str) -> Secret {
        Secret(value.to_owned())
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash(hex(&Sha256::digest(self.0.as_bytes())))
    }

    /// The secret itself, for the one response that hands it out.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("p4p_***")
    }
}

/// The SHA-256 of a secret, hex: what the database keeps. The secrets are
/// 256 random bits, so a fast hash is enough: there is nothing to guess.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretHash(String);

impl SecretHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hidden_from_debug() {
        let a = Secret::new_token();
        let b = Secret::new_token();
        assert!(a.expose().starts_with("p4p_"));
        assert_ne!(a, b);
        assert!(a.expose().len() >= 4 + 43, "at least 256 bits");
        assert_eq!(format!("{a:?}"), "p4p_***");
        assert_eq!(a.hash(), Secret::presented(a.expose()).hash());
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash().as_str().len(), 64);
    }
}
