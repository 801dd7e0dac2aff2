//! The layers every request of the public API passes through before and
//! after its handler: its duration recorded (by matched route), its
//! `X-Request-Id` kept only when it is safe to log, and its time limit
//! (503 `timeout`).

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::metrics::HTTP_REQUEST_DURATION;

/// Answers 503 `timeout` for a request that takes longer than `limit`.
/// What it was writing goes on (writes run in their own task), so a 503
/// here never means that a write was half done.
pub async fn timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(seconds = limit.as_secs(), "request timed out");
            ApiError::TimedOut(limit).into_response()
        }
    }
}

/// Times every request, labelled with its matched route (an unknown path
/// is `unmatched`): ids, queries and tokens never become labels.
pub async fn record_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    metrics::histogram!(
        HTTP_REQUEST_DURATION,
        "method" => method,
        "route" => route,
        "status" => response.status().as_u16().to_string(),
    )
    .record(started.elapsed());
    response
}

/// The method, or `other` for one outside HTTP's usual few: a client must
/// not mint label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The longest `X-Request-Id` a client may choose.
const MAX_REQUEST_ID: usize = 64;

/// Whether a client's `X-Request-Id` may be logged as given: 1 to 64 of
/// `[A-Za-z0-9._-]`, so that it can neither forge a log line nor flood one.
fn is_safe_request_id(id: &HeaderValue) -> bool {
    let id = id.as_bytes();
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Drops a client's `X-Request-Id` that may not be logged as given (and a
/// repeated one), so that a new one is made in its place.
pub async fn unsafe_request_ids_replaced(mut request: Request) -> Request {
    let headers = request.headers_mut();
    let ids = headers.get_all("x-request-id");
    let mut given = ids.iter();
    let keep = matches!((given.next(), given.next()), (Some(id), None) if is_safe_request_id(id));
    if !keep {
        headers.remove("x-request-id");
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_cannot_mint_method_labels() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"BREW").expect("a valid method token");
        assert_eq!(method_label(&odd), "other");
    }

    #[test]
    fn only_short_ids_of_safe_characters_are_kept() {
        let safe = |id: &str| is_safe_request_id(&HeaderValue::from_str(id).expect("a value"));
        assert!(safe("a"));
        assert!(safe("req-42_b.c"));
        assert!(safe(&"x".repeat(64)));
        assert!(!safe(""));
        assert!(!safe(&"x".repeat(65)));
        for bad in ["a b", "a\tb", "id\"quoted", "<script>", "a=b", "a/b"] {
            assert!(!safe(bad), "{bad:?}");
        }
        let raw = HeaderValue::from_bytes(b"id\xc3\xa9").expect("obs-text is a value");
        assert!(!is_safe_request_id(&raw));
    }
}
