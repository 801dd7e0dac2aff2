//! Secrets the CLI holds: a bearer token and a pledge's claim secret.
//!
//! Both are wrapped so that `Debug` (and any log or panic message built from
//! it) never shows them; the value comes out only through `expose`.

use serde::{Deserialize, Serialize};

/// A bearer token (`p4p_...`); `Debug` prints `p4p_***`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    pub fn new(value: impl Into<String>) -> Self {
        Token(value.into())
    }

    /// The secret itself, for the `Authorization` header and the config file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("p4p_***")
    }
}

/// The secret a store claims its first token with; `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClaimSecret(String);

impl ClaimSecret {
    pub fn new(value: impl Into<String>) -> Self {
        ClaimSecret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClaimSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_token() {
        let token = Token::new("p4p_supersecret");
        assert_eq!(format!("{token:?}"), "p4p_***");
        assert_eq!(token.expose(), "p4p_supersecret");
    }

    #[test]
    fn debug_output_never_shows_a_claim_secret() {
        let secret = ClaimSecret::new("abc123");
        assert_eq!(format!("{secret:?}"), "***");
    }
}
