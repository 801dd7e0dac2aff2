//! Every endpoint the CLI calls (docs/API.md, v1), written once as the API
//! documents it; commands name an endpoint, never a path of their own.

use std::fmt;

/// An endpoint's path below the server URL, e.g. `v1/alerts/42/retract`:
/// its segments are ids and fixed names, none of which holds a `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint(String);

impl Endpoint {
    /// The path's segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

fn v1(path: impl fmt::Display) -> Endpoint {
    Endpoint(format!("v1/{path}"))
}

/// `POST /v1/pledge`.
pub fn pledge() -> Endpoint {
    v1("pledge")
}

/// `POST /v1/pledge/{store_id}/claim`.
pub fn claim(store_id: i64) -> Endpoint {
    v1(format_args!("pledge/{store_id}/claim"))
}

/// `GET` and `PATCH /v1/me`.
pub fn me() -> Endpoint {
    v1("me")
}

/// `GET` and `POST /v1/me/tokens`.
pub fn my_tokens() -> Endpoint {
    v1("me/tokens")
}

/// `DELETE /v1/me/tokens/{id}`.
pub fn my_token(id: i64) -> Endpoint {
    v1(format_args!("me/tokens/{id}"))
}

/// `GET` and `POST /v1/alerts`.
pub fn alerts() -> Endpoint {
    v1("alerts")
}

/// `GET` and `PATCH /v1/alerts/{id}`.
pub fn alert(id: i64) -> Endpoint {
    v1(format_args!("alerts/{id}"))
}

/// `POST /v1/alerts/{id}/{action}`: `retract`, `erase`, `flags`, and the
/// moderators' `approve`, `reject` and `verify`.
pub fn alert_action(id: i64, action: &'static str) -> Endpoint {
    v1(format_args!("alerts/{id}/{action}"))
}

/// `GET /v1/moderation/queue`.
pub fn moderation_queue() -> Endpoint {
    v1("moderation/queue")
}

/// `GET /v1/stores`.
pub fn stores() -> Endpoint {
    v1("stores")
}

/// `GET /v1/stores/{id}`.
pub fn store(id: i64) -> Endpoint {
    v1(format_args!("stores/{id}"))
}

/// `POST /v1/stores/{id}/{action}`: `approve`, `reject`, `suspend`,
/// `reinstate`, `approve-move`, `reject-move`.
pub fn store_action(id: i64, action: &'static str) -> Endpoint {
    v1(format_args!("stores/{id}/{action}"))
}

/// `GET /v1/stores/{id}/tokens`.
pub fn store_tokens(id: i64) -> Endpoint {
    v1(format_args!("stores/{id}/tokens"))
}

/// `DELETE /v1/stores/{id}/tokens/{token_id}`.
pub fn store_token(id: i64, token_id: i64) -> Endpoint {
    v1(format_args!("stores/{id}/tokens/{token_id}"))
}

/// `GET /v1/audit`.
pub fn audit() -> Endpoint {
    v1("audit")
}

/// `GET /v1/stream` (a WebSocket).
pub fn stream() -> Endpoint {
    v1("stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(endpoint: Endpoint) -> String {
        endpoint.segments().collect::<Vec<_>>().join("/")
    }

    #[test]
    fn endpoints_read_as_the_api_documents_them() {
        assert_eq!(path(alert_action(42, "retract")), "v1/alerts/42/retract");
        assert_eq!(path(store_token(7, 12)), "v1/stores/7/tokens/12");
        assert_eq!(path(claim(7)), "v1/pledge/7/claim");
        assert_eq!(path(moderation_queue()), "v1/moderation/queue");
    }
}
