//! The HTTP side of the p4p server, as the CLI uses it: a small typed client
//! over `reqwest` that knows where the server is, adds the bearer token, and
//! turns every failure into one [`ApiError`] whose message can be shown as
//! is. Which endpoints there are is said once, in [`paths`].

pub mod paths;

use std::time::Duration;

use p4p_protocol::Problem;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::secret::Token;
use paths::Endpoint;

/// Why a call to the server failed; `Display` is the one line to show.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server refused the request with a problem document.
    #[error("{}", problem_message(.problem))]
    Problem {
        status: StatusCode,
        problem: Problem,
    },
    /// The server could not be reached at all.
    #[error("cannot reach the p4p server at {server}: {reason}")]
    Unreachable { server: String, reason: String },
    /// The server answered something that is not the p4p wire contract.
    #[error("unexpected answer from the p4p server at {server} ({status}): {reason}")]
    Unexpected {
        server: String,
        status: StatusCode,
        reason: String,
    },
    /// The HTTP client itself could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

impl ApiError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ApiError::Problem { status, .. } | ApiError::Unexpected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

fn problem_message(problem: &Problem) -> &str {
    if problem.detail.is_empty() {
        &problem.title
    } else {
        &problem.detail
    }
}

/// The base URL of a p4p server (`http` or `https`), e.g. `http://127.0.0.1:8080`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl(Url);

#[derive(Debug, thiserror::Error)]
#[error("invalid server URL `{url}`: {reason}")]
pub struct InvalidServerUrl {
    url: String,
    reason: String,
}

impl ServerUrl {
    pub fn parse(text: &str) -> Result<ServerUrl, InvalidServerUrl> {
        let invalid = |reason: String| InvalidServerUrl {
            url: text.to_owned(),
            reason,
        };
        let mut url = Url::parse(text.trim()).map_err(|error| invalid(error.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https".to_owned()));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a server URL has no query or fragment".to_owned()));
        }
        // A server mounted under a path prefix keeps it: endpoints go below it.
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(ServerUrl(url))
    }

    /// The URL as the user writes it, without the trailing slash.
    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    /// The URL of an endpoint, below this one.
    pub fn endpoint(&self, endpoint: &Endpoint) -> Url {
        let mut url = self.0.clone();
        // http and https URLs always have path segments (checked in `parse`).
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(endpoint.segments());
        }
        url
    }

    /// The WebSocket URL of the live stream: `ws://` for `http://`, `wss://` for `https://`.
    pub fn stream_url(&self, since: Option<i64>) -> Url {
        let mut url = self.endpoint(&paths::stream());
        let scheme = if self.0.scheme() == "https" {
            "wss"
        } else {
            "ws"
        };
        // http -> ws and https -> wss are both allowed by `set_scheme`.
        let _ = url.set_scheme(scheme);
        if let Some(since) = since {
            url.query_pairs_mut()
                .append_pair("since", &since.to_string());
        }
        url
    }
}

impl std::fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A successful answer: the typed body and the JSON exactly as the server sent it.
#[derive(Debug)]
pub struct Reply<T> {
    pub body: T,
    pub json: serde_json::Value,
}

/// A client of one p4p server, with or without a token.
pub struct Api {
    http: reqwest::Client,
    server: ServerUrl,
    token: Option<Token>,
}

impl Api {
    pub fn new(server: ServerUrl, token: Option<Token>) -> Result<Api, ApiError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("p4p-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|error| ApiError::Client(error_chain(&error)))?;
        Ok(Api {
            http,
            server,
            token,
        })
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
        query: &[(&str, String)],
    ) -> Result<Reply<T>, ApiError> {
        let request = self.request(Method::GET, endpoint).query(query);
        self.send(request).await?.decode()
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
        body: &B,
    ) -> Result<Reply<T>, ApiError> {
        self.send_json(Method::POST, endpoint, body, &[]).await
    }

    /// Sends a JSON body with extra headers (`If-Match`, `Idempotency-Key`).
    pub async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &Endpoint,
        body: &B,
        headers: &[(&str, &str)],
    ) -> Result<Reply<T>, ApiError> {
        let mut request = self.request(method, endpoint).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await?.decode()
    }

    /// Posts a create with an `Idempotency-Key` (a new random one unless
    /// `key` names one) and retries it with the same key while no answer
    /// came, the server was unavailable, or the key's first try still ran:
    /// the server creates it at most once (docs/API.md, Safe writes).
    pub async fn post_once<B: Serialize, T: DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
        body: &B,
        key: Option<&str>,
    ) -> Result<Reply<T>, ApiError> {
        let key = key.map_or_else(new_idempotency_key, str::to_owned);
        let mut wait = Duration::from_secs(1);
        let mut attempt = 1;
        loop {
            let sent = self
                .send_json(Method::POST, endpoint, body, &[("Idempotency-Key", &key)])
                .await;
            match sent {
                Err(error) if attempt < POST_ATTEMPTS && worth_retrying(&error) => {
                    eprintln!(
                        "p4p: {error}; trying again in {} s with the same Idempotency-Key (it cannot be posted twice)",
                        wait.as_secs()
                    );
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
                answered => return answered,
            }
        }
    }

    /// `DELETE`: the answer may have no body at all (204).
    pub async fn delete(&self, endpoint: &Endpoint) -> Result<Option<serde_json::Value>, ApiError> {
        let request = self.request(Method::DELETE, endpoint);
        let raw = self.send(request).await?;
        if raw.bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        raw.decode::<serde_json::Value>()
            .map(|reply| Some(reply.json))
    }

    fn request(&self, method: Method, endpoint: &Endpoint) -> reqwest::RequestBuilder {
        let request = self.http.request(method, self.server.endpoint(endpoint));
        match &self.token {
            Some(token) => request.bearer_auth(token.expose()),
            None => request,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<RawReply, ApiError> {
        // reqwest's own message repeats the URL; its causes say what went wrong.
        let unreachable = |error: reqwest::Error| ApiError::Unreachable {
            server: self.server.to_string(),
            reason: std::error::Error::source(&error)
                .map(error_chain)
                .unwrap_or_else(|| error.to_string()),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        let raw = RawReply {
            server: self.server.to_string(),
            status,
            bytes: bytes.to_vec(),
        };
        if status.is_client_error() || status.is_server_error() {
            return Err(raw.into_error());
        }
        Ok(raw)
    }
}

/// Tries of a create before the CLI gives up (1, 2, 4, 8 s between them).
const POST_ATTEMPTS: u32 = 5;

/// A fresh `Idempotency-Key`: 122 random bits.
pub fn new_idempotency_key() -> String {
    format!("p4p-cli-{}", uuid::Uuid::new_v4().simple())
}

/// Whether a create may have been lost on the way and is safe to send
/// again with its key: no answer, a server error or unavailability, or the
/// key's first try still running.
fn worth_retrying(error: &ApiError) -> bool {
    match error {
        ApiError::Unreachable { .. } => true,
        ApiError::Problem { status, problem } => {
            status.is_server_error() || problem.code == "idempotency_in_progress"
        }
        ApiError::Unexpected { status, .. } => status.is_server_error(),
        ApiError::Client(_) => false,
    }
}

/// An answer before it is decoded.
struct RawReply {
    server: String,
    status: StatusCode,
    bytes: Vec<u8>,
}

impl RawReply {
    fn decode<T: DeserializeOwned>(self) -> Result<Reply<T>, ApiError> {
        let json: serde_json::Value =
            serde_json::from_slice(&self.bytes).map_err(|error| self.unexpected(error))?;
        let body = T::deserialize(&json).map_err(|error| self.unexpected(error))?;
        Ok(Reply { body, json })
    }

    fn into_error(self) -> ApiError {
        match serde_json::from_slice::<Problem>(&self.bytes) {
            Ok(problem) => ApiError::Problem {
                status: self.status,
                problem,
            },
            Err(_) => {
                let text = String::from_utf8_lossy(&self.bytes);
                let excerpt: String = text.trim().chars().take(200).collect();
                let reason = if excerpt.is_empty() {
                    self.status
                        .canonical_reason()
                        .unwrap_or("no detail")
                        .to_owned()
                } else {
                    excerpt
                };
                self.unexpected(reason)
            }
        }
    }

    fn unexpected(&self, reason: impl std::fmt::Display) -> ApiError {
        ApiError::Unexpected {
            server: self.server.clone(),
            status: self.status,
            reason: reason.to_string(),
        }
    }
}

/// An error and its causes in one line: reqwest's own message ("error sending
/// request") says little, the innermost cause ("connection refused") says why.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_go_below_the_server_url() {
        let server = ServerUrl::parse("http://127.0.0.1:8080").expect("valid");
        assert_eq!(server.as_str(), "http://127.0.0.1:8080");
        assert_eq!(
            server.endpoint(&paths::alert(42)).as_str(),
            "http://127.0.0.1:8080/v1/alerts/42"
        );
        let prefixed = ServerUrl::parse("https://example.org/p4p").expect("valid");
        assert_eq!(
            prefixed.endpoint(&paths::me()).as_str(),
            "https://example.org/p4p/v1/me"
        );
    }

    #[test]
    fn the_stream_url_uses_the_websocket_scheme() {
        let plain = ServerUrl::parse("http://127.0.0.1:8080/").expect("valid");
        assert_eq!(
            plain.stream_url(Some(12)).as_str(),
            "ws://127.0.0.1:8080/v1/stream?since=12"
        );
        let tls = ServerUrl::parse("https://p4p.example.org").expect("valid");
        assert_eq!(
            tls.stream_url(None).as_str(),
            "wss://p4p.example.org/v1/stream"
        );
    }

    #[test]
    fn only_http_urls_name_a_server() {
        assert!(ServerUrl::parse("ftp://example.org").is_err());
        assert!(ServerUrl::parse("127.0.0.1:8080").is_err());
    }
}
