//! Listing alerts (`GET /v1/alerts`), near a place or not: the statement
//! is built at run time, one sub-select per covering grid cell merged
//! newest first, then each row checked against the exact distance.

use super::binds::{Bind, Binds};
use super::rows::{alert_from_row, ALERT_COLUMNS};
use super::SqlStore;
use crate::db::{AlertList, AlertQuery, DbResult, Viewer};
use crate::domain::place::{Area, Grid, Place};

/// How many rows a near-a-point listing reads per round before the exact
/// distance check.
const NEAR_BATCH: i64 = 64;

pub(super) async fn alerts(store: &SqlStore, query: &AlertQuery) -> DbResult<AlertList> {
    let wanted = query.limit + 1;
    let batch = match query.near {
        Some(_) => NEAR_BATCH.max(wanted as i64),
        None => wanted as i64,
    };
    let mut alerts = Vec::with_capacity(wanted);
    let mut before_id = query.before_id;
    let cells = query.near.and_then(Area::covering_cells);
    loop {
        let (sql, binds) = alerts_page(query, cells.as_ref(), before_id, batch);
        let rows = binds.query(&sql).fetch_all(&store.reader).await?;
        let exhausted = (rows.len() as i64) < batch;
        for row in &rows {
            let alert = alert_from_row(row)?;
            before_id = Some(alert.id);
            let within = query.near.is_none_or(|near| {
                near.contains(Place::from_stored(alert.location.lat, alert.location.lon))
            });
            if within {
                alerts.push(alert);
            }
            if alerts.len() == wanted {
                break;
            }
        }
        if exhausted || alerts.len() == wanted {
            break;
        }
    }
    let more = alerts.len() > query.limit;
    alerts.truncate(query.limit);
    Ok(AlertList { alerts, more })
}

/// The statement for one page of `GET /v1/alerts` before `before_id`,
/// newest first, at most `batch` rows: near a place, the newest of each
/// covering cell through its index, merged; otherwise by id.
fn alerts_page(
    query: &AlertQuery,
    cells: Option<&(Grid, Vec<i64>)>,
    before_id: Option<i64>,
    batch: i64,
) -> (String, Binds<'static>) {
    let mut binds = Binds::default();
    let mut filter = String::new();
    if let Some(before_id) = before_id {
        filter.push_str(&format!(" AND a.id < {}", binds.push(Bind::Int(before_id))));
    }
    // Past retention, or erased: gone for everyone, staff included.
    filter.push_str(&format!(
        " AND a.occurred_at >= {} AND a.erased_at IS NULL",
        binds.push(Bind::Int(query.not_before))
    ));
    if let Viewer::Store(store_id) = query.viewer {
        // A CASE, not an OR: no index serves it, so the database never
        // gathers every published alert to sort them.
        filter.push_str(&format!(
            " AND CASE WHEN a.status = 'published' THEN 1 WHEN a.store_id = {} THEN 1 ELSE 0 END = 1",
            binds.push(Bind::Int(store_id))
        ));
    }
    if let Some(kind) = query.kind {
        filter.push_str(&format!(
            " AND a.kind = {}",
            binds.push(Bind::Text(kind.as_str()))
        ));
    }
    if let Some(status) = query.status {
        filter.push_str(&format!(
            " AND a.status = {}",
            binds.push(Bind::Text(status.as_str()))
        ));
    }
    if let Some(near) = query.near {
        let boxes: Vec<String> = near
            .bounding_boxes()
            .into_iter()
            .map(|(low, high)| {
                let [lat_low, lat_high, lon_low, lon_high] =
                    [low[1], high[1], low[0], high[0]].map(|value| binds.push(Bind::Real(value)));
                format!(
                    "(a.lat BETWEEN {lat_low} AND {lat_high} AND a.lon BETWEEN {lon_low} AND {lon_high})"
                )
            })
            .collect();
        filter.push_str(&format!(" AND ({})", boxes.join(" OR ")));
    }
    let limit = binds.push(Bind::Int(batch));
    let Some((grid, cells)) = cells else {
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts a JOIN stores s ON s.id = a.store_id \
             WHERE 1 = 1{filter} ORDER BY a.id DESC LIMIT {limit}"
        );
        return (sql, binds);
    };
    // Every cell's sub-select names the same filter values and limit.
    let per_cell: Vec<String> = cells
        .iter()
        .enumerate()
        .map(|(i, cell)| {
            format!(
                "SELECT id FROM (SELECT a.id FROM alerts a WHERE a.{} = {}{filter} \
                 ORDER BY a.id DESC LIMIT {limit}) AS cell{i}",
                grid.column,
                binds.push(Bind::Int(*cell))
            )
        })
        .collect();
    let sql = format!(
        "SELECT {ALERT_COLUMNS} FROM ({}) AS near JOIN alerts a ON a.id = near.id \
         JOIN stores s ON s.id = a.store_id ORDER BY a.id DESC LIMIT {limit}",
        per_cell.join(" UNION ALL ")
    );
    (sql, binds)
}
