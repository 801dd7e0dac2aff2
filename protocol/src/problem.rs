use serde::{Deserialize, Serialize};

/// An RFC 9457 problem document, as every error is answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    #[serde(rename = "type", default = "about_blank")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable and machine-readable, e.g. `invalid_input`.
    pub code: String,
}

fn about_blank() -> String {
    "about:blank".to_owned()
}

/// The media type of a problem document.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";
