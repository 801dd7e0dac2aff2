//! Posting and reading alerts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use p4p_protocol::{
    Alert, AlertKind, AlertPage, AlertPatch, AlertStatus, Flag, Location, NewAlert, ReasonRequest,
    StoreRef,
};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Caller, Json, OptionalJson, Query};
use super::moderation::moderate;
use super::openapi::RequiredReason;
use super::{committed, ApiContext, ApiError};
use crate::db::{AlertQuery, Edit, EditOutcome, FlagOutcome, Viewer};
use crate::domain::alert::{patched, ValidAlert};
use crate::domain::moderation::{Admission, AlertAction};
use crate::domain::place::{Area, Place, RadiusKm};
use crate::domain::reason;
use crate::domain::Invalid;

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 500;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list, post_alert))
        .routes(routes!(show, edit))
        .routes(routes!(retract))
        .routes(routes!(flag))
}

/// Post an alert (stores). It is published at once unless moderation holds
/// it (`pending`).
#[utoipa::path(
    post, path = "/v1/alerts", tag = "alerts",
    request_body = NewAlert,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The alert, `published` or `pending`", body = Alert),
        (status = 403, description = "Only approved member stores post alerts"),
        (status = 429, description = "This store posted its allowance of alerts for the hour (`rate_limited`)"),
    )
)]

async fn post_alert(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Json(input): Json<NewAlert>,
) -> Result<(StatusCode, axum::Json<Alert>), ApiError> {
    let store = caller.require_store("post alerts")?;
    let place = Area::of_store(store).center;
    let now = OffsetDateTime::now_utc();
    let alert = ValidAlert::parse(input, place, now)?;
    ctx.limits.alert_posted(store.id)?;
    let author = StoreRef {
        id: store.id,
        name: store.name.clone(),
    };
    let admission = status_of_new_alert(&ctx, store.id).await?;
    let storage = ctx.storage.clone();
    let posted = committed(&ctx, async move {
        Ok(storage.post_alert(&author, &alert, &admission, now).await?)
    })
    .await?;
    tracing::info!(alert_id = posted.id, kind = %posted.kind, status = %posted.status, "alert posted");
    Ok((StatusCode::CREATED, axum::Json(posted)))
}

/// Whether a store's new alert would be published or wait for a moderator.
async fn status_of_new_alert(ctx: &ApiContext, store_id: i64) -> Result<Admission, ApiError> {
    // Probation only needs to know whether the store reached its count.
    let published_before = match ctx.policy.probation_alerts {
        0 => 0,
        probation => {
            ctx.storage
                .published_count(store_id, i64::from(probation))
                .await?
        }
    };
    Ok(ctx.policy.status_of_new_alert(published_before))
}

/// Whether the caller may see the alert: staff see all; stores see
/// published alerts within retention, and their own.
fn visible(ctx: &ApiContext, caller: &Caller, alert: &Alert) -> bool {
    let Some(store) = &caller.store else {
        return true;
    };
    let recent = alert.occurred_at.unix_timestamp()
        >= ctx.policy.retention_cutoff(OffsetDateTime::now_utc());
    recent && (alert.status == AlertStatus::Published || alert.store.id == store.id)
}

/// The alert, if the caller may see it; 404 alike for unknown and hidden.
async fn visible_alert(ctx: &ApiContext, caller: &Caller, id: i64) -> Result<Alert, ApiError> {
    match ctx.storage.alert(id).await? {
        Some(alert) if visible(ctx, caller, &alert) => Ok(alert),
        _ => Err(ApiError::NotFound(format!("no alert with id {id}"))),
    }
}

/// The alert, if the caller may change it: its author or staff. Others
/// get 403 if they can see it, 404 if not.
pub(super) async fn changeable(
    ctx: &ApiContext,
    caller: &Caller,
    id: i64,
    doing: &str,
) -> Result<Alert, ApiError> {
    caller.require_active()?;
    let alert = visible_alert(ctx, caller, id).await?;
    match &caller.store {
        Some(store) if store.id != alert.store.id => Err(ApiError::forbidden(
            "forbidden",
            format!("only its author or association staff can {doing} alert {id}"),
        )),
        _ => Ok(alert),
    }
}

/// Change an alert (its author or staff): what is given replaces.
#[utoipa::path(
    patch, path = "/v1/alerts/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "The alert")),
    request_body = AlertPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The alert, changed", body = Alert),
        (status = 403, description = "Only its author or staff edit an alert"),
        (status = 404, description = "No alert with this id that the caller may see"),
        (status = 409, description = "The alert cannot be edited in its status (`invalid_transition`), or changed meanwhile (`edit_conflict`)"),
    )
)]
async fn edit(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(patch): Json<AlertPatch>,
) -> Result<axum::Json<Alert>, ApiError> {
    let current = changeable(&ctx, &caller, id, "edit").await?;
    if patch == AlertPatch::default() {
        return Err(Invalid::new("body", "give at least one field to change").into());
    }
    let now = OffsetDateTime::now_utc();
    let place = Place::from_stored(current.location.lat, current.location.lon);
    let edited = ValidAlert::parse(patched(&current, patch), place, now)?;
    if let Some(store) = &caller.store {
        // Every edit of a published alert reaches every store in reach.
        ctx.limits.alert_edited(store.id)?;
    }
    // An author whose new alerts would wait has its edits wait too, so that
    // no content reaches members unseen by a moderator.
    let by_author = caller.store.is_some();
    let hold = match &caller.store {
        Some(store) => status_of_new_alert(&ctx, store.id).await?.status == AlertStatus::Pending,
        None => false,
    };
    let storage = ctx.storage.clone();
    let actor = caller.actor();
    let alert = committed(&ctx, async move {
        let edit = Edit {
            alert: &edited,
            seen: &current,
            by_author,
            hold,
        };
        match storage.edit_alert(id, edit, &actor, now).await? {
            EditOutcome::Done(changed) => Ok(*changed),
            EditOutcome::NotFound => Err(ApiError::NotFound(format!("no alert with id {id}"))),
            EditOutcome::Conflict(status) => Err(ApiError::conflict(
                "invalid_transition",
                format!("cannot edit alert {id}: it is {status}"),
            )),
            EditOutcome::Stale => Err(ApiError::conflict(
                "edit_conflict",
                format!("alert {id} changed while you edited it; fetch it again and retry"),
            )),
        }
    })
    .await?;
    tracing::info!(alert_id = id, "alert edited");
    Ok(axum::Json(alert))
}

/// Withdraw a published alert, saying why (its author or staff).
#[utoipa::path(
    post, path = "/v1/alerts/{id}/retract", tag = "alerts",
    params(("id" = i64, Path, description = "The alert")),
    request_body(content = RequiredReason, description = "Why; members are told"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The alert, now retracted", body = Alert),
        (status = 403, description = "Only its author or staff retract an alert"),
        (status = 404, description = "No alert with this id that the caller may see"),
        (status = 409, description = "The alert is not published (`invalid_transition`)"),
    )
)]
async fn retract(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
    OptionalJson(body): OptionalJson<ReasonRequest>,
) -> Result<axum::Json<Alert>, ApiError> {
    changeable(&ctx, &caller, id, "retract").await?;
    moderate(
        &ctx,
        &caller,
        id,
        AlertAction::Retract,
        body.reason.as_deref(),
    )
    .await
}

/// Report an alert as wrong or abusive (stores; once per store and alert).
#[utoipa::path(
    post, path = "/v1/alerts/{id}/flags", tag = "alerts",
    params(("id" = i64, Path, description = "The alert")),
    request_body(content = RequiredReason, description = "What is wrong with it"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The flag", body = Flag),
        (status = 403, description = "Only member stores flag, and not their own alerts"),
        (status = 404, description = "No alert with this id that the caller may see"),
        (status = 409, description = "Already flagged by this store (`already_flagged`), or not flaggable in its status (`invalid_transition`)"),
    )
)]
async fn flag(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<ReasonRequest>,
) -> Result<(StatusCode, axum::Json<Flag>), ApiError> {
    let store = caller.require_store("flag alerts")?;
    let reason = reason(body.reason.as_deref(), true)?.unwrap_or_default();
    let alert = visible_alert(&ctx, &caller, id).await?;
    if alert.store.id == store.id {
        return Err(ApiError::forbidden(
            "forbidden",
            "a store cannot flag its own alert; edit or retract it instead",
        ));
    }
    let storage = ctx.storage.clone();
    let (store_id, threshold) = (store.id, ctx.policy.flag_threshold);
    let flag = committed(&ctx, async move {
        match storage
            .flag_alert(id, store_id, &reason, threshold, OffsetDateTime::now_utc())
            .await?
        {
            FlagOutcome::Flagged { flag, held, events } => {
                if held {
                    tracing::info!(alert_id = id, "alert held for review after flags");
                }
                Ok((flag, events))
            }
            FlagOutcome::NotFound => Err(ApiError::NotFound(format!("no alert with id {id}"))),
            FlagOutcome::AlreadyFlagged => Err(ApiError::conflict(
                "already_flagged",
                format!("this store already flagged alert {id}"),
            )),
            FlagOutcome::NotFlaggable(status) => Err(ApiError::conflict(
                "invalid_transition",
                format!("cannot flag alert {id}: it is {status}"),
            )),
        }
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(flag)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Around a point: with `lon` and `radius_km`.
    #[param(minimum = -90.0, maximum = 90.0)]
    lat: Option<f64>,
    /// Around a point: with `lat` and `radius_km`.
    #[param(minimum = -180.0, maximum = 180.0)]
    lon: Option<f64>,
    /// Around a point: with `lat` and `lon`.
    #[param(minimum = 0.5, maximum = 500.0)]
    radius_km: Option<f64>,
    kind: Option<AlertKind>,
    /// Staff only; stores see published alerts and their own.
    status: Option<AlertStatus>,
    /// At most this many alerts (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// Only alerts older than this one: `next_before_id` of the page before.
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

/// Alerts, newest first, filtered (stores and staff).
#[utoipa::path(
    get, path = "/v1/alerts", tag = "alerts",
    params(ListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of alerts", body = AlertPage),
        (status = 403, description = "A pending or suspended store, or a store filtering by `status`"),
        (status = 422, description = "A parameter is out of its limits, or `lat`, `lon` and `radius_km` are not given together"),
    )
)]
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
        not_before: ctx.policy.retention_cutoff(OffsetDateTime::now_utc()),
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

/// One alert. A retracted or rejected alert is 404 to stores other than
/// its author.
#[utoipa::path(
    get, path = "/v1/alerts/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "The alert")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The alert", body = Alert),
        (status = 403, description = "A pending or suspended store"),
        (status = 404, description = "No alert with this id that the caller may see"),
    )
)]
async fn show(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<axum::Json<Alert>, ApiError> {
    caller.require_active()?;
    let alert = visible_alert(&ctx, &caller, id).await?;
    Ok(axum::Json(alert))
}
