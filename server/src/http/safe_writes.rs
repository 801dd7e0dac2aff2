//! Safe writes (docs/API.md): `ETag` and `If-Match` on alerts, so that no edit
//! silently undoes another, and `Idempotency-Key` on creates, so that a
//! retry after a timeout, a crash or on another node creates nothing twice.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use p4p_protocol::Alert;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::extract::Caller;
use super::ApiError;
use crate::db::{IdempotencyKey, Remembered, Storage, IDEMPOTENCY_SECONDS};
use crate::domain::version::{etag, IfMatch};
use crate::domain::Invalid;

/// An alert answered with its `ETag`.
pub struct Versioned(pub Alert);

impl IntoResponse for Versioned {
    fn into_response(self) -> Response {
        let tag = HeaderValue::from_str(&etag(self.0.version));
        let mut response = axum::Json(self.0).into_response();
        if let Ok(tag) = tag {
            response.headers_mut().insert(header::ETAG, tag);
        }
        response
    }
}

/// The `If-Match` header, if the client sent one; 400 naming it if it is
/// not an entity tag of ours.
pub fn if_match(headers: &HeaderMap) -> Result<Option<IfMatch>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::BadRequest(bad_if_match().to_string()))?;
    IfMatch::parse(text)
        .map(Some)
        .map_err(|invalid| ApiError::BadRequest(invalid.to_string()))
}

fn bad_if_match() -> Invalid {
    Invalid::new("If-Match", "must be visible ASCII, such as \"3\"")
}

/// 412: the alert is at another version than `If-Match` named.
pub fn precondition_failed(id: i64, version: i64) -> ApiError {
    ApiError::PreconditionFailed(format!(
        "alert {id} is at version {version}, not the one If-Match named: it changed since you read it; \
         fetch it again and retry"
    ))
}

/// The header a client names its create with.
const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// docs/API.md: 1 to 200 visible ASCII characters.
const MAX_KEY: usize = 200;

/// The keys whose first request is still running on this node: a second
/// request with one of them is 409 `idempotency_in_progress`. (On another
/// node the same race ends in the database: the later transaction finds
/// the key taken and answers what it remembers.)
#[derive(Debug, Default)]
pub struct InProgress(Mutex<HashSet<(String, String)>>);

/// A key taken for a running request, let go when dropped.
pub struct Running {
    registry: Arc<InProgress>,
    entry: (String, String),
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut running) = self.registry.0.lock() {
            running.remove(&self.entry);
        }
    }
}

/// Where a create with an `Idempotency-Key` stands.
pub enum Begun {
    /// No key, or a new one: create, keeping the key with what is created.
    New {
        key: Option<IdempotencyKey>,
        _running: Option<Running>,
    },
    /// The key's first request succeeded: answer it again.
    Remembered(Remembered),
}

/// Reads the `Idempotency-Key` of a create at `path` whose body is `body`,
/// and what the account's key already stands for.
pub async fn begin(
    storage: &dyn Storage,
    in_progress: &Arc<InProgress>,
    caller: &Caller,
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
) -> Result<Begun, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(Begun::New {
            key: None,
            _running: None,
        });
    };
    let key = valid_key(value.as_bytes())?;
    let key = IdempotencyKey {
        account: account_of(caller),
        key,
        fingerprint: fingerprint(path, body),
    };
    if let Some(remembered) = still_remembered(storage, &key).await? {
        return Ok(Begun::Remembered(remembered));
    }
    let entry = (key.account.clone(), key.key.clone());
    let fresh = in_progress
        .0
        .lock()
        .map_err(|_| ApiError::Internal("the idempotency registry is poisoned".to_owned()))?
        .insert(entry.clone());
    if !fresh {
        return Err(ApiError::conflict(
            "idempotency_in_progress",
            "a request with this Idempotency-Key is still running; retry once it has answered",
        ));
    }
    Ok(Begun::New {
        key: Some(key),
        _running: Some(Running {
            registry: in_progress.clone(),
            entry,
        }),
    })
}

/// What the key stands for within its 24 hours, if it was used with the
/// same request; 422 `idempotency_key_reused` if with another.
pub async fn still_remembered(
    storage: &dyn Storage,
    key: &IdempotencyKey,
) -> Result<Option<Remembered>, ApiError> {
    let Some(remembered) = storage.remembered(&key.account, &key.key).await? else {
        return Ok(None);
    };
    let expired =
        remembered.created_at < OffsetDateTime::now_utc().unix_timestamp() - IDEMPOTENCY_SECONDS;
    if expired {
        return Ok(None);
    }
    if remembered.fingerprint != key.fingerprint {
        return Err(ApiError::KeyReused(
            "Idempotency-Key was used with another request (a different body or endpoint) \
             within 24 hours; use a new key for a new request"
                .to_owned(),
        ));
    }
    Ok(Some(remembered))
}

/// What a key the database found taken (by another request, another node)
/// remembers: a create told "key taken" always had a key, and the first
/// success it answers is committed.
pub async fn taken(
    storage: &dyn Storage,
    key: Option<&IdempotencyKey>,
) -> Result<Remembered, ApiError> {
    let lost = || ApiError::Internal("an idempotency key was taken, then lost".to_owned());
    let key = key.ok_or_else(lost)?;
    still_remembered(storage, key).await?.ok_or_else(lost)
}

/// The status a remembered create answered.
pub fn status_of(remembered: &Remembered) -> StatusCode {
    StatusCode::from_u16(remembered.status).unwrap_or(StatusCode::CREATED)
}

fn valid_key(value: &[u8]) -> Result<String, ApiError> {
    let visible = value.iter().all(|b| (0x21..=0x7e).contains(b));
    if value.is_empty() || value.len() > MAX_KEY || !visible {
        return Err(ApiError::BadRequest(format!(
            "Idempotency-Key must be 1 to {MAX_KEY} visible ASCII characters (got {} bytes)",
            value.len()
        )));
    }
    Ok(String::from_utf8_lossy(value).into_owned())
}

/// Whose keys: the store's for store tokens (all its devices share them),
/// the token's own for staff.
fn account_of(caller: &Caller) -> String {
    match &caller.store {
        Some(store) => format!("store:{}", store.id),
        None => format!("token:{}", caller.token.id),
    }
}

/// The request a key names, byte for byte.
fn fingerprint(path: &str, body: &[u8]) -> String {
    let mut digest = Sha256::new();
    digest.update(b"POST ");
    digest.update(path.as_bytes());
    digest.update(b"\n");
    digest.update(body);
    digest
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_two_hundred_visible_ascii_characters() {
        assert_eq!(valid_key(b"a").ok().as_deref(), Some("a"));
        assert!(valid_key(&[b'k'; 200]).is_ok());
        for bad in [
            &b""[..],
            &[b'k'; 201],
            b"with space",
            b"tab\t",
            "é".as_bytes(),
            b"\x7f",
        ] {
            assert!(valid_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_fingerprint_names_the_path_and_every_byte_of_the_body() {
        let one = fingerprint("/v1/alerts", b"{\"a\":1}");
        assert_eq!(one, fingerprint("/v1/alerts", b"{\"a\":1}"));
        assert_ne!(one, fingerprint("/v1/alerts", b"{\"a\": 1}"));
        assert_ne!(one, fingerprint("/v1/alerts/1/flags", b"{\"a\":1}"));
        assert_eq!(one.len(), 64);
    }
}
