//! The one error type of the HTTP layer, answered as a problem document.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use p4p_protocol::{Problem, PROBLEM_CONTENT_TYPE};

use super::limits::whole_seconds;
use crate::db::DbError;
use crate::domain::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("{0}")]
    MalformedJson(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// `If-Match` named another version than the object's.
    #[error("{0}")]
    PreconditionFailed(String),
    /// An `Idempotency-Key` sent again with another request.
    #[error("{0}")]
    KeyReused(String),
    #[error("request body is larger than the limit of 64 KiB")]
    TooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Logged in full, never shown to the client.
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Unavailable(&'static str),
    #[error("{detail}")]
    RateLimited {
        code: &'static str,
        detail: String,
        retry_after: std::time::Duration,
    },
    #[error("the request took longer than {} s; try again shortly", .0.as_secs())]
    TimedOut(std::time::Duration),
}

impl ApiError {
    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::Forbidden {
            code,
            detail: detail.into(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            code,
            detail: detail.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::PreconditionFailed(_) => {
                (StatusCode::PRECONDITION_FAILED, "precondition_failed")
            }
            ApiError::KeyReused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            ApiError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Database(error) if error.is_unavailable() => {
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            ApiError::Database(_) | ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::RateLimited { code, .. } => (StatusCode::TOO_MANY_REQUESTS, code),
            ApiError::TimedOut(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let detail = match &self {
            ApiError::Database(error) => {
                tracing::error!(%error, "database error");
                crate::metrics::database_error();
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    "the database is unavailable; try again shortly".to_owned()
                } else {
                    "internal error; it has been logged".to_owned()
                }
            }
            ApiError::Internal(error) => {
                tracing::error!(%error, "internal error");
                "internal error; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = problem(status, code, detail);
        let retry_after = match &self {
            ApiError::RateLimited { retry_after, .. } => Some(whole_seconds(*retry_after)),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(5),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A problem document response.
pub fn problem(status: StatusCode, code: &str, detail: String) -> Response {
    let body = Problem {
        kind: "about:blank".to_owned(),
        title: title(status).to_owned(),
        status: status.as_u16(),
        detail,
        code: code.to_owned(),
    };
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    );
    response
}

/// RFC 9110's names, where they differ from the older ones `http` knows.
fn title(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNPROCESSABLE_ENTITY => "Unprocessable Content",
        StatusCode::PAYLOAD_TOO_LARGE => "Content Too Large",
        _ => status.canonical_reason().unwrap_or("Error"),
    }
}

/// Turns any error response that is not yet a problem document (a framework
/// rejection, an unknown route, a wrong method) into one, keeping its status
/// and its text as the detail.
pub async fn problem_documents(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes() == PROBLEM_CONTENT_TYPE.as_bytes());
    if is_problem {
        return response;
    }
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let allow = response.headers().get(header::ALLOW).cloned();
    let text = axum::body::to_bytes(response.into_body(), 4_096)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "method not allowed on this endpoint".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("too_large", ApiError::TooLarge.to_string()),
        _ if text.is_empty() => (
            "error",
            status.canonical_reason().unwrap_or("error").to_owned(),
        ),
        _ if status.is_server_error() => {
            tracing::error!(status = status.as_u16(), detail = %text, "error response");
            ("internal", "internal error; it has been logged".to_owned())
        }
        _ => ("bad_request", text),
    };
    let mut response = problem(status, code, detail);
    for (name, value) in [(header::RETRY_AFTER, retry_after), (header::ALLOW, allow)] {
        if let Some(value) = value {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
