//! Extractors that answer bad requests with problem documents naming the
//! field: JSON bodies, query strings, and the caller behind a token.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use futures_util::future::BoxFuture;
use p4p_protocol::{Role, Store, StoreStatus, TokenInfo};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{ApiContext, ApiError};
use crate::db::{Actor, DbResult};
use crate::domain::secret::{Secret, SecretHash};
use crate::domain::Invalid;

/// A JSON request body, sent as `Content-Type: application/json` (else
/// 415: a cross-site HTML form cannot send that type, so it cannot post
/// here). Syntax errors are 400; well-formed JSON of the wrong shape is
/// 422, naming the field.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + Serialize, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        says_json(request.headers())?;
        let bytes = body(request, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// A JSON body as [`Json`] reads it, with the bytes as sent: what an
/// `Idempotency-Key` is compared with.
pub struct Sent<T> {
    pub value: T,
    pub bytes: Bytes,
}

impl<T: DeserializeOwned + Serialize, S: Send + Sync> FromRequest<S> for Sent<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, sent) = request.into_parts();
        let bytes = body(Request::from_parts(parts.clone(), sent), state).await?;
        let again = Request::from_parts(parts, axum::body::Body::from(bytes.clone()));
        let Json(value) = Json::from_request(again, state).await?;
        Ok(Sent { value, bytes })
    }
}

/// A JSON body that may be left out: an empty body (of any type, or none)
/// is `T::default()`; any other body is a [`Json`] one, `null` included.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Serialize + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared = says_json(request.headers());
        let bytes = body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        declared?;
        if bytes.trim_ascii() == b"null" {
            return Ok(OptionalJson(T::default()));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// Whether the request says its body is JSON: `application/json`, in any
/// case, with or without parameters (`; charset=utf-8`); else 415.
fn says_json(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let essence = declared
        .as_deref()
        .map(|value| value.split(';').next().unwrap_or_default().trim());
    match essence {
        Some(essence) if essence.eq_ignore_ascii_case("application/json") => Ok(()),
        Some(_) => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {:?} is not JSON: send the body as Content-Type: application/json",
            declared.unwrap_or_default()
        ))),
        None => Err(ApiError::UnsupportedMediaType(
            "Content-Type is missing: send the body as Content-Type: application/json".to_owned(),
        )),
    }
}

async fn body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge
            } else {
                ApiError::BadRequest(rejection.body_text())
            }
        })
}

fn parse_json<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, so that anything that is not one JSON value is 400 and
    // every error after it is about the shape, 422 naming the field (serde
    // reports some shape errors, like `null` for an enum, as syntax).
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|error| malformed(&error))?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        ApiError::Invalid(Invalid::new(
            if path == "." { "body".to_owned() } else { path },
            format!("is invalid: {}", strip_position(&inner.to_string())),
        ))
    })?;
    let sent: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| malformed(&e))?;
    let read = serde_json::to_value(&value).map_err(|e| ApiError::Internal(e.to_string()))?;
    objects_sent_as_objects(&sent, &read, "")?;
    Ok(value)
}

/// serde also reads a struct from a JSON array of its fields in order
/// (`"location": [40.7, -74.0]`); the contract says objects. Wherever the
/// value read is an object, the request must have sent one.
fn objects_sent_as_objects(
    sent: &serde_json::Value,
    read: &serde_json::Value,
    path: &str,
) -> Result<(), Invalid> {
    use serde_json::Value;
    match (sent, read) {
        (Value::Object(sent), Value::Object(read)) => {
            for (name, read) in read {
                if let Some(sent) = sent.get(name) {
                    let path = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}.{name}")
                    };
                    objects_sent_as_objects(sent, read, &path)?;
                }
            }
            Ok(())
        }
        (Value::Array(sent), Value::Array(read)) => {
            for (index, (sent, read)) in sent.iter().zip(read).enumerate() {
                objects_sent_as_objects(sent, read, &format!("{path}[{index}]"))?;
            }
            Ok(())
        }
        (_, Value::Object(_)) => Err(Invalid::new(
            if path.is_empty() { "body" } else { path },
            "is invalid: expected an object",
        )),
        _ => Ok(()),
    }
}

fn malformed(error: &serde_json::Error) -> ApiError {
    ApiError::MalformedJson(format!("malformed JSON: {error}"))
}

/// serde_json ends data errors with " at line 1 column 42": the field path
/// already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// A query string; a value of the wrong type is 422, naming the parameter.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(url_parse(query));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|error| {
                let path = error.path().to_string();
                let field = if path == "." {
                    "query".to_owned()
                } else {
                    path
                };
                ApiError::Invalid(Invalid::new(
                    field,
                    format!("is invalid: {}", error.into_inner()),
                ))
            })
    }
}

/// The client address the per-address limits count (see
/// `TrustedProxies::client_of`); `None` only where no connection info exists.
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<ApiContext> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &ApiContext,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            ctx.edge
                .proxies
                .client_of(&parts.headers, &parts.extensions),
        ))
    }
}

/// The caller behind the request's bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: TokenInfo,
    pub store: Option<Store>,
    /// To look the token up again (streams check it after subscribing).
    pub token_hash: SecretHash,
}

impl Caller {
    pub fn role(&self) -> Role {
        self.token.role
    }

    pub fn actor(&self) -> Actor {
        match &self.store {
            Some(store) => Actor::store(store.id),
            None => Actor::staff(self.token.role, self.token.id, &self.token.label),
        }
    }

    /// A pending or suspended store is refused everywhere but `GET /v1/me`.
    pub fn require_active(&self) -> Result<(), ApiError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        match store.status {
            StoreStatus::Approved => Ok(()),
            StoreStatus::Suspended => Err(suspended(store.status_reason.as_deref())),
            status => Err(ApiError::forbidden(
                "store_not_approved",
                format!("this store is {status}, not approved"),
            )),
        }
    }

    /// An approved member store, for what only stores do.
    pub fn require_store(&self, doing: &str) -> Result<&Store, ApiError> {
        self.require_active()?;
        self.store.as_ref().ok_or_else(|| {
            ApiError::forbidden("forbidden", format!("only member stores can {doing}"))
        })
    }

    /// Association staff: moderators and admins.
    pub fn require_staff(&self, doing: &str) -> Result<(), ApiError> {
        if self.role().is_staff() {
            return Ok(());
        }
        Err(ApiError::forbidden(
            "forbidden",
            format!("only association staff can {doing}"),
        ))
    }
}

/// 403 `store_suspended`, telling the store why.
pub fn suspended(reason: Option<&str>) -> ApiError {
    let detail = match reason {
        Some(reason) => format!("this store is suspended: {reason}; contact the association"),
        None => "this store is suspended; contact the association".to_owned(),
    };
    ApiError::forbidden("store_suspended", detail)
}

impl FromRequestParts<ApiContext> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &ApiContext,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        let client = ctx
            .edge
            .proxies
            .client_of(&parts.headers, &parts.extensions);
        authenticate(ctx, token, client).await
    }
}

/// The caller of `GET /v1/stream`, which may also pass `?access_token=`
/// for clients that cannot set headers (browsers).
pub struct StreamCaller(pub Caller);

impl FromRequestParts<ApiContext> for StreamCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &ApiContext,
    ) -> Result<Self, Self::Rejection> {
        let from_query = parts.uri.query().and_then(|query| {
            url_parse(query)
                .find(|(name, _)| name == "access_token")
                .map(|(_, value)| value.into_owned())
        });
        let token = match from_query {
            Some(token) => Some(token),
            None => bearer(parts)?.map(str::to_owned),
        };
        let client = ctx
            .edge
            .proxies
            .client_of(&parts.headers, &parts.extensions);
        authenticate(ctx, token.as_deref(), client)
            .await
            .map(StreamCaller)
    }
}

fn url_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not valid text"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(ApiError::Unauthorized(
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

/// Looks the token up, unless its client address is held for guessing
/// (and the token is not one seen valid from it); an unknown or revoked
/// token counts against the address.
async fn authenticate(
    ctx: &ApiContext,
    token: Option<&str>,
    address: Option<IpAddr>,
) -> Result<Caller, ApiError> {
    let token = token.ok_or(ApiError::Unauthorized(
        "a bearer token is required: Authorization: Bearer p4p_…",
    ))?;
    let token_hash = Secret::presented(token).hash();
    ctx.limits.may_authenticate(address, &token_hash)?;
    let Some(credential) = ctx.storage.credential(&token_hash).await? else {
        let unknown = ApiError::Unauthorized("unknown or revoked token");
        return Err(ctx
            .limits
            .authentication_failed(address, &token_hash, unknown));
    };
    let now = time::OffsetDateTime::now_utc();
    if let Some(write) = ctx.storage.token_used(&credential.token, now) {
        record_use(write, credential.token.id).await;
    }
    ctx.limits.authenticated(address, &token_hash);
    let caller = Caller {
        token: credential.token,
        store: credential.store,
        token_hash,
    };
    tracing::Span::current().record("caller", tracing::field::display(caller.actor().0));
    Ok(caller)
}

/// How long a request waits for its token's use to be recorded.
const LAST_USED_WAIT: Duration = Duration::from_millis(100);

/// Runs the write that records a token's use in its own task and waits for
/// it at most [`LAST_USED_WAIT`]: authentication never queues for long
/// behind the writes (as reads have their own pool for), and the write is
/// not lost if it waits longer. A failure is logged and counted, never
/// answered: `last_used_at` is for people, not for access.
async fn record_use(write: BoxFuture<'static, DbResult<()>>, token_id: i64) {
    let write = tokio::spawn(async move {
        if let Err(error) = write.await {
            tracing::warn!(%error, token_id, "cannot record a token's use");
            crate::metrics::database_error();
        }
    });
    let _ = tokio::time::timeout(LAST_USED_WAIT, write).await;
}

#[cfg(test)]
mod tests {
    use p4p_protocol::{AlertPatch, MePatch};

    use super::*;

    fn refusal<T: DeserializeOwned + Serialize>(body: &str) -> String {
        match parse_json::<T>(body.as_bytes()) {
            Ok(_) => panic!("{body} was accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn a_struct_sent_as_an_array_is_refused_naming_the_field() {
        assert_eq!(
            refusal::<MePatch>(r#"{"location": [40.7, -74.0]}"#),
            "location is invalid: expected an object"
        );
        assert_eq!(
            refusal::<AlertPatch>(r#"{"vehicles": [{}, [null, null]]}"#),
            "vehicles[1] is invalid: expected an object"
        );
        assert_eq!(
            refusal::<MePatch>("[12.5]"),
            "body is invalid: expected an object"
        );
        assert!(parse_json::<MePatch>(br#"{"location": {"lat": 1, "lon": 2}}"#).is_ok());
    }

    #[test]
    fn only_application_json_says_json() {
        let with = |value: Option<&str>| {
            let mut headers = axum::http::HeaderMap::new();
            if let Some(value) = value {
                headers.insert(header::CONTENT_TYPE, value.parse().expect("a value"));
            }
            says_json(&headers)
        };
        for json in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
        ] {
            assert!(with(Some(json)).is_ok(), "{json}");
        }
        for other in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
            "application/json-patch+json",
            "",
        ] {
            let refused = with(Some(other)).expect_err(other);
            assert!(
                matches!(refused, ApiError::UnsupportedMediaType(_)),
                "{other}"
            );
        }
        assert!(with(None).is_err());
    }
}
