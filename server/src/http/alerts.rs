//! Posting and reading alerts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use p4p_protocol::{Alert, AlertKind, AlertPage, AlertStatus, Location, NewAlert, StoreRef};
use serde::Deserialize;
use time::OffsetDateTime;

use super::extract::{Caller, Json, Query};
use super::{ApiContext, ApiError};
use crate::db::{AlertQuery, Viewer};
use crate::domain::alert::ValidAlert;
use crate::domain::place::{Area, Place, RadiusKm};
use crate::domain::Invalid;

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 500;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/v1/alerts", get(list).post(post_alert))
        .route("/v1/alerts/{id}", get(show))
}

async fn post_alert(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Json(input): Json<NewAlert>,
) -> Result<(StatusCode, axum::Json<Alert>), ApiError> {
    let store = caller.require_store("post alerts")?;
    let place = Place::from_stored(store.location.lat, store.location.lon);
    let now = OffsetDateTime::now_utc();
    let alert = ValidAlert::parse(input, place, now)?;
    let author = StoreRef {
        id: store.id,
        name: store.name.clone(),
    };
    // Moderation holds nothing yet: every alert of an approved store is
    // published at once.
    let status = AlertStatus::Published;
    // The write and the hand-off to the fanout run in their own task: a
    // client that hangs up mid-request cannot cancel a committed event's
    // delivery.
    let storage = ctx.storage.clone();
    let hub = ctx.hub.clone();
    let posted = tokio::spawn(async move {
        let (posted, event) = storage.post_alert(&author, &alert, status, now).await?;
        if let Some(event) = event {
            hub.committed(event);
        }
        Ok::<_, ApiError>(posted)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("posting task failed: {e}")))??;
    tracing::info!(alert_id = posted.id, kind = %posted.kind, "alert posted");
    Ok((StatusCode::CREATED, axum::Json(posted)))
}

#[derive(Deserialize)]
struct ListParams {
    lat: Option<f64>,
    lon: Option<f64>,
    radius_km: Option<f64>,
    kind: Option<AlertKind>,
    status: Option<AlertStatus>,
    limit: Option<usize>,
    before_id: Option<i64>,
}

impl ListParams {
    fn near(&self) -> Result<Option<Area>, Invalid> {
        match (self.lat, self.lon, self.radius_km) {
            (None, None, None) => Ok(None),
            (Some(lat), Some(lon), Some(radius_km)) => Ok(Some(Area {
                center: Place::parse("location", Location { lat, lon }).map_err(|e| {
                    Invalid::new(e.field.trim_start_matches("location."), e.message)
                })?,
                radius: RadiusKm::parse("radius_km", radius_km)?,
            })),
            _ => Err(Invalid::new("lat", "lat, lon and radius_km go together")),
        }
    }

    fn limit(&self) -> Result<usize, Invalid> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(limit) if (1..=MAX_PAGE).contains(&limit) => Ok(limit),
            Some(_) => Err(Invalid::new(
                "limit",
                format!("must be between 1 and {MAX_PAGE}"),
            )),
        }
    }
}

async fn list(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<AlertPage>, ApiError> {
    caller.require_active()?;
    let viewer = match &caller.store {
        Some(_) if params.status.is_some() => {
            return Err(ApiError::forbidden(
                "forbidden",
                "only association staff filter by status; stores see published alerts and their own",
            ));
        }
        Some(store) => Viewer::Store(store.id),
        None => Viewer::Staff,
    };
    let query = AlertQuery {
        viewer,
        near: params.near()?,
        kind: params.kind,
        status: params.status,
        limit: params.limit()?,
        before_id: params.before_id,
    };
    let list = ctx.storage.alerts(&query).await?;
    let next_before_id = if list.more {
        list.alerts.last().map(|alert| alert.id)
    } else {
        None
    };
    Ok(axum::Json(AlertPage {
        alerts: list.alerts,
        next_before_id,
    }))
}

async fn show(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<axum::Json<Alert>, ApiError> {
    caller.require_active()?;
    let not_found = || ApiError::NotFound(format!("no alert with id {id}"));
    let alert = ctx.storage.alert(id).await?.ok_or_else(not_found)?;
    let visible = match &caller.store {
        None => true,
        Some(store) => alert.status == AlertStatus::Published || alert.store.id == store.id,
    };
    if !visible {
        return Err(not_found());
    }
    Ok(axum::Json(alert))
}
