//! Listing alerts (`GET /v1/alerts`), near a place or not: the statement
//! is built at run time, one sub-select per covering grid cell merged
//! newest first, then each row checked against the exact distance.

use super::rows::{alert_from_row, ALERT_COLUMNS};
use super::SqlStore;
use crate::db::{AlertList, AlertQuery, DbResult, Viewer};
use crate::domain::place::{Area, Grid, Place};

/// How many rows a near-a-point listing reads per round before the exact
/// distance check.
pub(super) const NEAR_BATCH: i64 = 64;

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
        let sql = store.sql(&sql);
        let rows = binds
            .iter()
            .fold(sqlx::query(&sql), |q, bind| bind.apply(q))
            .fetch_all(&store.reader)
            .await?;
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
pub(super) fn alerts_page(
    query: &AlertQuery,
    cells: Option<&(Grid, Vec<i64>)>,
    before_id: Option<i64>,
    batch: i64,
) -> (String, Vec<Bind>) {
    let mut filter = String::new();
    let mut binds: Vec<Bind> = Vec::new();
    if let Some(before_id) = before_id {
        filter.push_str(" AND a.id < ?");
        binds.push(Bind::Int(before_id));
    }
    // Past retention, or erased: gone for everyone, staff included.
    filter.push_str(" AND a.occurred_at >= ? AND a.erased_at IS NULL");
    binds.push(Bind::Int(query.not_before));
    if let Viewer::Store(store_id) = query.viewer {
        // A CASE, not an OR: no index serves it, so the database never
        // gathers every published alert to sort them.
        filter.push_str(
            " AND CASE WHEN a.status = 'published' THEN 1 WHEN a.store_id = ? THEN 1 ELSE 0 END = 1",
        );
        binds.push(Bind::Int(store_id));
    }
    if let Some(kind) = query.kind {
        filter.push_str(" AND a.kind = ?");
        binds.push(Bind::Text(kind.as_str()));
    }
    if let Some(status) = query.status {
        filter.push_str(" AND a.status = ?");
        binds.push(Bind::Text(status.as_str()));
    }
    if let Some(near) = query.near {
        let boxes: Vec<String> = near
            .bounding_boxes()
            .into_iter()
            .map(|(low, high)| {
                binds.extend([low[1], high[1], low[0], high[0]].map(Bind::Real));
                "(a.lat BETWEEN ? AND ? AND a.lon BETWEEN ? AND ?)".to_owned()
            })
            .collect();
        filter.push_str(&format!(" AND ({})", boxes.join(" OR ")));
    }
    let Some((grid, cells)) = cells else {
        binds.push(Bind::Int(batch));
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts a JOIN stores s ON s.id = a.store_id \
             WHERE 1 = 1{filter} ORDER BY a.id DESC LIMIT ?"
        );
        return (sql, binds);
    };
    let mut all_binds = Vec::with_capacity(cells.len() * (binds.len() + 2) + 1);
    let per_cell: Vec<String> = cells
        .iter()
        .enumerate()
        .map(|(i, cell)| {
            all_binds.push(Bind::Int(*cell));
            all_binds.extend(binds.iter().copied());
            all_binds.push(Bind::Int(batch));
            format!(
                "SELECT id FROM (SELECT a.id FROM alerts a WHERE a.{} = ?{filter} \
                 ORDER BY a.id DESC LIMIT ?) AS cell{i}",
                grid.column
            )
        })
        .collect();
    all_binds.push(Bind::Int(batch));
    let sql = format!(
        "SELECT {ALERT_COLUMNS} FROM ({}) AS near JOIN alerts a ON a.id = near.id \
         JOIN stores s ON s.id = a.store_id ORDER BY a.id DESC LIMIT ?",
        per_cell.join(" UNION ALL ")
    );
    (sql, all_binds)
}

/// A value bound to a statement built at run time.
#[derive(Debug, Clone, Copy)]
pub(super) enum Bind {
    Int(i64),
    Real(f64),
    Text(&'static str),
}

impl Bind {
    fn apply<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        match self {
            Bind::Int(value) => query.bind(value),
            Bind::Real(value) => query.bind(value),
            Bind::Text(value) => query.bind(value),
        }
    }
}
