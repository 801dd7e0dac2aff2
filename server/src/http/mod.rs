//! The HTTP and WebSocket API (docs/API.md): one router per resource, merged
//! here, sharing one [`ApiContext`]; the layers around every request
//! (`middleware`); what the API settles about a request before its handler
//! ([`Edge`]: the client behind the trusted proxies in `client_addr`, the
//! origins that may open streams in `origin`); and the rate limits
//! (`limits`). The connections themselves are the `listener`'s.

mod alerts;
mod audit;
mod client_addr;
mod error;
mod extract;
pub mod limits;
mod me;
mod middleware;
mod moderation;
mod openapi;
mod ops;
mod origin;
mod pledge;
mod safe_writes;
mod stores;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, Response};
use axum::{Extension, Router};
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use tracing::Span;
use utoipa_axum::router::OpenApiRouter;

pub use client_addr::TrustedProxies;
pub use error::ApiError;
pub use origin::AllowedOrigins;

use crate::config::{LimitArgs, PublicUrl};
use crate::db::Storage;
use crate::domain::moderation::Policy;
use crate::fanout::Network;

/// docs/API.md: larger request bodies are refused with 413 before parsing.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiContext {
    /// Reads; writes whose commits must be heard go through `network`.
    pub storage: Arc<dyn Storage>,
    /// Publishes what writes committed, and takes stream subscriptions.
    pub network: Arc<Network>,
    pub stream: StreamSettings,
    pub policy: Policy,
    pub limits: Arc<limits::Limits>,
    /// Renders `GET /metrics`; the stream writers' counters.
    pub metrics: crate::metrics::Metrics,
    /// The `Idempotency-Key`s whose first request is still running here.
    pub in_progress: Arc<safe_writes::InProgress>,
    /// Where users reach the server, the client behind the proxies, the
    /// origins that may open streams, the time a request may take.
    pub edge: Arc<Edge>,
}

impl ApiContext {
    /// The context the handlers of one node share.
    pub fn new(
        storage: Arc<dyn Storage>,
        network: Arc<Network>,
        args: &crate::config::ServeArgs,
        public_url: PublicUrl,
        metrics: crate::metrics::Metrics,
    ) -> ApiContext {
        if args.limits.rate_limits == crate::config::Switch::Off {
            tracing::warn!(
                "rate limits are OFF (--rate-limits off or P4P_RATE_LIMITS=off): alerts, pledges, \
                 failed authentications and stream connections are not limited; use this only for \
                 benchmarks and trusted test rigs"
            );
        }
        ApiContext {
            storage,
            network,
            stream: StreamSettings {
                ping_interval: Duration::from_secs(args.ping_interval_secs),
            },
            policy: args.policy(),
            limits: Arc::new(limits::Limits::new(&args.limits)),
            edge: Arc::new(Edge::new(&args.limits, public_url)),
            metrics,
            in_progress: Arc::default(),
        }
    }
}

/// How streams behave.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// Pings go out this often; a client silent for two intervals is dropped.
    pub ping_interval: Duration,
}

/// What the API settles about a request before its handler, besides the
/// rate limits: who the client is, whether its web page may open streams,
/// and how long it may take.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Where users reach the server (`--public-url`): absolute links, and
    /// the origin that may always open streams.
    pub public_url: PublicUrl,
    /// Who a request comes from, behind the trusted proxies.
    pub proxies: TrustedProxies,
    /// The web origins that may open streams.
    pub origins: AllowedOrigins,
    /// How long a request may take before it is answered 503 `timeout`.
    pub request_timeout: Duration,
}

impl Edge {
    pub fn new(args: &LimitArgs, public_url: PublicUrl) -> Edge {
        Edge {
            origins: AllowedOrigins::new(&args.allowed_origins, public_url.origin()),
            public_url,
            proxies: TrustedProxies::new(args.trusted_proxies.clone()),
            request_timeout: Duration::from_secs(args.request_timeout_secs),
        }
    }
}

/// Every endpoint the API serves, each registered with its OpenAPI
/// operation (`routes!` and `#[utoipa::path]`): the router and the document
/// come from the same declarations, and a test checks that they agree.
pub(crate) fn endpoints() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(pledge::router())
        .merge(stores::router())
        .merge(me::router())
        .merge(alerts::router())
        .merge(moderation::router())
        .merge(audit::router())
        .merge(stream::router())
        .merge(ops::router())
        .merge(openapi::router())
}

/// What only operators reach, on `--metrics-bind`: `GET /metrics`.
fn operator_endpoints() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().merge(ops::operator_router())
}

/// Every endpoint of both listeners, as the OpenAPI document lists them.
#[cfg(test)]
pub(crate) fn all_endpoints() -> OpenApiRouter<ApiContext> {
    endpoints().merge(operator_endpoints())
}

/// Binds the operators' listener (`--metrics-bind`), says where on
/// standard output, and serves it in the background.
pub async fn serve_operators(bind: &str, ctx: ApiContext) -> anyhow::Result<()> {
    use anyhow::Context;
    let operators = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen for metrics on {bind}"))?;
    let metrics_address = operators.local_addr()?;
    tracing::info!(%metrics_address, "serving metrics to operators");
    // Tests and scripts read this line.
    println!("p4p-server metrics on http://{metrics_address}/metrics");
    let app = operator_router(ctx);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(operators, app).await {
            tracing::error!(%error, "the metrics listener failed");
        }
    });
    Ok(())
}

/// The operators' listener: metrics, nothing else.
fn operator_router(ctx: ApiContext) -> Router {
    let (routes, _) = operator_endpoints().split_for_parts();
    routes
        .fallback(|| async { ApiError::NotFound("no such endpoint".to_owned()) })
        .with_state(ctx)
        .layer(axum::middleware::map_response(error::problem_documents))
}

pub fn router(ctx: ApiContext) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let (routes, mut document) = endpoints().split_for_parts();
    // The document lists the operators' endpoints too (said to be theirs).
    document.merge(operator_endpoints().into_openapi());
    routes
        .layer(Extension(openapi::Document::new(document)))
        .fallback(|| async { ApiError::NotFound("no such endpoint".to_owned()) })
        .layer(axum::middleware::from_fn_with_state(
            ctx.edge.request_timeout,
            middleware::timeout,
        ))
        .with_state(ctx)
        .layer(axum::middleware::map_response(error::problem_documents))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or("-");
                    // The path only: a query may carry an access token.
                    tracing::info_span!(
                        "request",
                        request_id = %id,
                        method = %request.method(),
                        path = %request.uri().path(),
                        caller = tracing::field::Empty,
                    )
                })
                .on_request(())
                .on_response(|response: &Response<_>, latency: Duration, _span: &Span| {
                    tracing::info!(status = response.status().as_u16(), ?latency, "request");
                })
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(axum::middleware::map_request(
            middleware::unsafe_request_ids_replaced,
        ))
        .layer(axum::middleware::from_fn(middleware::record_request))
}
