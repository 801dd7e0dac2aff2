//! The relational storage, for SQLite and PostgreSQL alike: the only SQL.
//!
//! One implementation over `sqlx::Any`; statements are written once with
//! `?` placeholders and numbered for PostgreSQL by [`Dialect::sql`].
//!
//! SQLite is the embedded default: one file, WAL, foreign keys on. Its
//! writes go through a pool of one connection, so they commit one at a time
//! and never wait on SQLITE_BUSY; reads use their own pool. PostgreSQL
//! carries several server nodes: every event takes its `seq` from one
//! counter row inside its transaction, so commits serialize on that row and
//! `seq` order is commit order across all nodes.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use p4p_protocol::{
    Alert, AlertStatus, AuditEntry, Flag, FlaggedAlert, Location, ModerationQueue, PendingMove,
    Role, Store, StoreRef, StoreStatus, TokenInfo,
};
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool};
use sqlx::{Executor, Row};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::domain::delivery::EventKind;
use crate::domain::moderation::Admission;
use crate::domain::place::{Grid, Place, RadiusKm};
use crate::domain::store::MAX_STORE_TOKENS;
use crate::domain::version::changed_fields;

/// How many rows a near-a-point listing reads per round before the exact
/// distance check.
const NEAR_BATCH: i64 = 64;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Which SQL the database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn of_url(url: &str) -> Option<Dialect> {
        if url.starts_with("sqlite:") {
            Some(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Dialect::Postgres)
        } else {
            None
        }
    }

    fn of(conn: &AnyConnection) -> Dialect {
        if conn.backend_name() == "PostgreSQL" {
            Dialect::Postgres
        } else {
            Dialect::Sqlite
        }
    }

    /// Locks the rows a transaction reads before it decides on a change,
    /// so that concurrent writers (other nodes) wait. SQLite writes one
    /// transaction at a time already.
    fn for_update(self, of: &str) -> String {
        match self {
            Dialect::Postgres => format!(" FOR UPDATE OF {of}"),
            Dialect::Sqlite => String::new(),
        }
    }

    /// The statement for this database: PostgreSQL numbers its
    /// placeholders (`?` becomes `$1`, `$2`...; `?1` becomes `$1`).
    ///
    /// It skips `?` inside '...' literals; statements here use no `--`
    /// comments, quoted identifiers or dollar-quoted strings, and never mix
    /// `?` with `?N` in one statement (SQLite would number them otherwise).
    pub fn sql(self, text: &str) -> Cow<'_, str> {
        if self == Dialect::Sqlite {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len() + 16);
        let mut next = 0;
        let mut chars = text.chars().peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            if c == '\'' {
                quoted = !quoted;
            }
            if c != '?' || quoted {
                out.push(c);
                continue;
            }
            out.push('$');
            if chars.peek().is_some_and(char::is_ascii_digit) {
                while let Some(digit) = chars.next_if(char::is_ascii_digit) {
                    out.push(digit);
                }
            } else {
                next += 1;
                out.push_str(&next.to_string());
            }
        }
        Cow::Owned(out)
    }
}

pub struct SqlStore {
    dialect: Dialect,
    writer: AnyPool,
    reader: AnyPool,
    /// New alerts, committed in groups by [`commit_posts`].
    posts: mpsc::Sender<QueuedPost>,
    /// When this node last wrote each token's `last_used_at`.
    token_uses: TokenUses,
}

impl SqlStore {
    pub async fn connect(url: &str, pool: u32) -> DbResult<SqlStore> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::of_url(url).ok_or_else(|| {
            DbError::UnsupportedUrl(url.split(':').next().unwrap_or(url).to_owned())
        })?;
        match dialect {
            Dialect::Sqlite => SqlStore::connect_sqlite(url).await,
            Dialect::Postgres => {
                // Reads get their own pool: writes queued on the seq
                // counter must not starve authentication, replay or /readyz.
                let writer = AnyPoolOptions::new()
                    .max_connections(pool)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(url)
                    .await?;
                POSTGRES_MIGRATIONS.run(&writer).await?;
                let reader = AnyPoolOptions::new()
                    .max_connections(pool)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(url)
                    .await?;
                Ok(SqlStore::new(dialect, writer, reader))
            }
        }
    }

    async fn connect_sqlite(url: &str) -> DbResult<SqlStore> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut writer = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(|conn, _| sqlite_pragmas(conn, WRITER_PRAGMAS));
        if in_memory {
            // The database lives as long as its one connection does.
            writer = writer
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let writer = writer.connect(&with_mode(url, "rwc")).await?;
        SQLITE_MIGRATIONS.run(&writer).await?;
        let reader = if in_memory {
            writer.clone()
        } else {
            AnyPoolOptions::new()
                .max_connections(4)
                .after_connect(|conn, _| sqlite_pragmas(conn, READER_PRAGMAS))
                .connect(&with_mode(url, "ro"))
                .await?
        };
        Ok(SqlStore::new(Dialect::Sqlite, writer, reader))
    }

    fn new(dialect: Dialect, writer: AnyPool, reader: AnyPool) -> SqlStore {
        let (posts, queued) = mpsc::channel(POST_QUEUE);
        tokio::spawn(commit_posts(writer.clone(), queued));
        SqlStore {
            dialect,
            writer,
            reader,
            posts,
            token_uses: TokenUses::default(),
        }
    }

    fn sql<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.dialect.sql(text)
    }

    /// After an erasure on SQLite: copies the WAL into the database file
    /// and empties it, so that the erased pages' old images leave the WAL
    /// too (`secure_delete` has zeroed them in the file). Best effort: a
    /// reader in the middle of a read leaves part for the next checkpoint.
    async fn checkpoint_erasure(&self) {
        if self.dialect != Dialect::Sqlite {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await
        {
            tracing::warn!(%error, "cannot checkpoint the WAL after an erasure");
        }
    }
}

/// How long a request waits for a PostgreSQL connection: while the
/// database is unreachable, requests answer 503 after this rather than
/// hang (the pool keeps trying to connect meanwhile).
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// WAL; an alert the poster was told about survives a power cut too.
/// `secure_delete` overwrites what an update or delete frees, so that
/// erased and withdrawn text does not linger in the file's free space.
const WRITER_PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
     PRAGMA busy_timeout = 10000; PRAGMA secure_delete = ON;";
const READER_PRAGMAS: &str = "PRAGMA busy_timeout = 10000;";

fn sqlite_pragmas<'c>(
    conn: &'c mut AnyConnection,
    pragmas: &'static str,
) -> BoxFuture<'c, Result<(), sqlx::Error>> {
    Box::pin(async move {
        conn.execute(pragmas).await?;
        Ok(())
    })
}

/// A SQLite URL with its open mode (`rwc` creates the file, `ro` reads).
fn with_mode(url: &str, mode: &str) -> String {
    if url.contains("mode=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}mode={mode}")
}

fn unix(at: OffsetDateTime) -> i64 {
    at.unix_timestamp()
}

async fn audit(
    tx: &mut AnyConnection,
    actor: &Actor,
    action: &str,
    object: &str,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> DbResult<()> {
    let dialect = Dialect::of(tx);
    sqlx::query(
        &dialect
            .sql("INSERT INTO audit (at, actor, action, object, reason) VALUES (?, ?, ?, ?, ?)"),
    )
    .bind(unix(now))
    .bind(&actor.0)
    .bind(action)
    .bind(object)
    .bind(reason)
    .execute(tx)
    .await?;
    Ok(())
}

const STORE_COLUMNS: &str = "id, name, address, lat, lon, radius_km, contact_name, contact_email, \
     phone, status, status_reason, created_at, updated_at, pending_lat, pending_lon, \
     move_requested_at";

fn store_from_row(row: &AnyRow) -> DbResult<Store> {
    store_from_columns(row, "")
}

/// `columns` (a list like [`STORE_COLUMNS`]) of the table aliased `table`:
/// `s.id, s.name...`, or with `renamed`, `s.id AS s_id...`, to read a row
/// along with another whose columns have the same names.
fn columns_of(table: &str, columns: &str, renamed: bool) -> String {
    columns
        .split(", ")
        .map(|column| match renamed {
            true => format!("{table}.{column} AS {table}_{column}"),
            false => format!("{table}.{column}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A store from columns named `{prefix}id`, `{prefix}name`...
fn store_from_columns(row: &AnyRow, prefix: &str) -> DbResult<Store> {
    let column = |name: &str| format!("{prefix}{name}");
    Ok(Store {
        id: row.try_get(column("id").as_str())?,
        name: row.try_get(column("name").as_str())?,
        address: row.try_get(column("address").as_str())?,
        location: Location {
            lat: row.try_get(column("lat").as_str())?,
            lon: row.try_get(column("lon").as_str())?,
        },
        radius_km: row.try_get(column("radius_km").as_str())?,
        status: parse_text(row.try_get::<&str, _>(column("status").as_str())?)?,
        contact_name: row.try_get(column("contact_name").as_str())?,
        contact_email: row.try_get(column("contact_email").as_str())?,
        phone: row.try_get(column("phone").as_str())?,
        status_reason: row.try_get(column("status_reason").as_str())?,
        pending_move: pending_move_from_columns(row, prefix)?,
        created_at: from_unix(row.try_get(column("created_at").as_str())?)?,
        updated_at: from_unix(row.try_get(column("updated_at").as_str())?)?,
    })
}

/// The store's pending move: its three columns are set together or not at all.
fn pending_move_from_columns(row: &AnyRow, prefix: &str) -> DbResult<Option<PendingMove>> {
    let column = |name: &str| format!("{prefix}{name}");
    let lat: Option<f64> = row.try_get(column("pending_lat").as_str())?;
    let lon: Option<f64> = row.try_get(column("pending_lon").as_str())?;
    let at: Option<i64> = row.try_get(column("move_requested_at").as_str())?;
    match (lat, lon, at) {
        (Some(lat), Some(lon), Some(at)) => Ok(Some(PendingMove {
            location: Location { lat, lon },
            requested_at: from_unix(at)?,
        })),
        (None, None, None) => Ok(None),
        _ => Err(DbError::Corrupt(
            "a store's pending move is incomplete".to_owned(),
        )),
    }
}

const TOKEN_COLUMNS: &str = "id, label, role, created_at, revoked_at, last_used_at";
/// Tokens of an owner, bound to `TokenOwner::store_id` (NULL for staff).
const OWNED_BY: &str = "store_id IS NOT DISTINCT FROM ?";

fn token_from_row(row: &AnyRow) -> DbResult<TokenInfo> {
    Ok(TokenInfo {
        id: row.try_get("id")?,
        label: row.try_get("label")?,
        role: parse_text(row.try_get::<&str, _>("role")?)?,
        created_at: from_unix(row.try_get("created_at")?)?,
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(from_unix)
            .transpose()?,
        last_used_at: row
            .try_get::<Option<i64>, _>("last_used_at")?
            .map(from_unix)
            .transpose()?,
    })
}

/// How stale a token's `last_used_at` may be: it is written at most this
/// often per token, so that authentication (every request) rarely writes.
const LAST_USED_EVERY: i64 = 60;

/// When this node last wrote each token's `last_used_at`, so that a burst
/// of requests with a token whose stored value is stale writes it once,
/// not once per request. Other nodes skip the write in SQL.
#[derive(Default)]
struct TokenUses(std::sync::Mutex<std::collections::HashMap<i64, i64>>);

/// Forget written times past this many tokens (those older than a minute).
const TOKEN_USES_KEPT: usize = 10_000;

impl TokenUses {
    /// Whether to write `now` for the token; claims the write if so.
    fn claim_write(&self, token_id: i64, now: i64) -> bool {
        let mut written = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if written
            .get(&token_id)
            .is_some_and(|&at| at > now - LAST_USED_EVERY)
        {
            return false;
        }
        if written.len() >= TOKEN_USES_KEPT {
            written.retain(|_, at| *at > now - LAST_USED_EVERY);
        }
        written.insert(token_id, now);
        true
    }
}

const ALERT_COLUMNS: &str =
    "a.id, a.kind, a.status, a.title, a.description, a.occurred_at, a.lat, a.lon, \
     a.radius_km, a.suspects, a.vehicles, a.verified, a.created_at, a.updated_at, \
     a.status_reason, a.version, a.store_id, s.name AS store_name";

fn alert_from_row(row: &AnyRow) -> DbResult<Alert> {
    let json = |column: &str| -> DbResult<String> { Ok(row.try_get::<String, _>(column)?) };
    Ok(Alert {
        id: row.try_get("id")?,
        kind: parse_text(row.try_get::<&str, _>("kind")?)?,
        status: parse_text(row.try_get::<&str, _>("status")?)?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        occurred_at: from_unix(row.try_get("occurred_at")?)?,
        location: Location {
            lat: row.try_get("lat")?,
            lon: row.try_get("lon")?,
        },
        radius_km: row.try_get("radius_km")?,
        suspects: serde_json::from_str(&json("suspects")?)
            .map_err(|e| DbError::Corrupt(format!("suspects: {e}")))?,
        vehicles: serde_json::from_str(&json("vehicles")?)
            .map_err(|e| DbError::Corrupt(format!("vehicles: {e}")))?,
        store: StoreRef {
            id: row.try_get("store_id")?,
            name: row.try_get("store_name")?,
        },
        verified: row.try_get::<i64, _>("verified")? != 0,
        version: row.try_get("version")?,
        status_reason: row.try_get("status_reason")?,
        created_at: from_unix(row.try_get("created_at")?)?,
        updated_at: from_unix(row.try_get("updated_at")?)?,
    })
}

fn event_from_row(row: &AnyRow) -> DbResult<Event> {
    let kind: &str = row.try_get("type")?;
    let previous_reach = match (
        row.try_get::<Option<f64>, _>("previous_lat")?,
        row.try_get::<Option<f64>, _>("previous_lon")?,
        row.try_get::<Option<f64>, _>("previous_radius_km")?,
    ) {
        (Some(lat), Some(lon), Some(radius)) => Some(Area {
            center: Place::from_stored(lat, lon),
            radius: RadiusKm::from_stored(radius),
        }),
        _ => None,
    };
    Ok(Event {
        seq: row.try_get("seq")?,
        kind: EventKind::parse(kind)
            .ok_or_else(|| DbError::Corrupt(format!("event type {kind}")))?,
        alert_id: row.try_get("alert_id")?,
        author: row.try_get("store_id")?,
        reach: Area {
            center: Place::from_stored(row.try_get("lat")?, row.try_get("lon")?),
            radius: RadiusKm::from_stored(row.try_get("radius_km")?),
        },
        previous_reach,
        occurred_at: row.try_get("occurred_at")?,
        body: Arc::from(row.try_get::<&str, _>("body")?),
    })
}

/// An event to append, before it has its `seq`.
struct NewEvent<'a> {
    kind: EventKind,
    alert: &'a Alert,
    previous_reach: Option<Area>,
    /// `update`s: the fields that changed, as a JSON array.
    changed: Option<String>,
    body: String,
}

impl<'a> NewEvent<'a> {
    /// An event whose body is given whole.
    fn plain(kind: EventKind, alert: &'a Alert, body: String) -> NewEvent<'a> {
        NewEvent {
            kind,
            alert,
            previous_reach: None,
            changed: None,
            body,
        }
    }

    /// A published alert taken back to pending: a `retract` (with `reason`)
    /// where members saw it `before`, and a `pending` for the moderation
    /// consoles with it as it waits now.
    fn held(before: &'a Alert, waiting: &'a Alert, reason: &str) -> DbResult<[NewEvent<'a>; 2]> {
        Ok([
            NewEvent::plain(
                EventKind::Retract,
                before,
                retract_body(before.id, Some(reason))?,
            ),
            NewEvent::plain(EventKind::Pending, waiting, alert_body(waiting)?),
        ])
    }

    /// An `update` of `after`, saying what changed since `before`, and where
    /// it was when the update moved it.
    fn update(before: &Alert, after: &'a Alert) -> DbResult<NewEvent<'a>> {
        let changed = to_json(&changed_fields(before, after))?;
        let previous = Area::of_alert(before);
        Ok(NewEvent {
            kind: EventKind::Update,
            alert: after,
            previous_reach: (previous != Area::of_alert(after)).then_some(previous),
            body: update_body(&changed, after)?,
            changed: Some(changed),
        })
    }
}

/// Appends events in the writing transaction, in order, with the next
/// seqs: one counter update and one insert for all of them.
async fn append_events(
    tx: &mut AnyConnection,
    events: Vec<NewEvent<'_>>,
    now: OffsetDateTime,
) -> DbResult<Vec<Event>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let dialect = Dialect::of(tx);
    let count = events.len() as i64;
    // The counter row serializes every event-writing transaction, on every
    // node: seq order is commit order.
    let last: i64 = sqlx::query_scalar(
        &dialect.sql("UPDATE event_counter SET seq = seq + ? WHERE id = 1 RETURNING seq"),
    )
    .bind(count)
    .fetch_one(&mut *tx)
    .await?;
    let changed: Vec<Option<String>> = events.iter().map(|new| new.changed.clone()).collect();
    let events: Vec<Event> = events
        .into_iter()
        .zip(last - count + 1..)
        .map(|(new, seq)| Event {
            seq,
            kind: new.kind,
            alert_id: new.alert.id,
            author: new.alert.store.id,
            reach: Area::of_alert(new.alert),
            previous_reach: new.previous_reach,
            occurred_at: unix(new.alert.occurred_at),
            body: Arc::from(new.body),
        })
        .collect();
    let row = "(?, ?, ?, ?, ?, ?, ?, CASE WHEN ? THEN ? END, CASE WHEN ? THEN ? END, \
               CASE WHEN ? THEN ? END, ?, ?, ?, ?)";
    let sql = format!(
        "INSERT INTO events (seq, type, alert_id, store_id, lat, lon, radius_km, previous_lat, previous_lon, \
         previous_radius_km, occurred_at, changed, body, created_at) VALUES {}",
        vec![row; events.len()].join(", ")
    );
    let sql = dialect.sql(&sql);
    // Its text varies with the number of rows: not worth a cached statement.
    let mut insert = sqlx::query(&sql).persistent(events.len() == 1);
    for (event, changed) in events.iter().zip(&changed) {
        let previous = event.previous_reach;
        insert = insert
            .bind(event.seq)
            .bind(event.kind.as_str())
            .bind(event.alert_id)
            .bind(event.author)
            .bind(event.reach.center.lat())
            .bind(event.reach.center.lon())
            .bind(event.reach.radius.km())
            // Through sqlx::Any a NULL float is declared with another type,
            // which a later real value on the same prepared statement then
            // contradicts (PostgreSQL): a flag and a plain value instead.
            .bind(previous.is_some())
            .bind(previous.map_or(0.0, |r| r.center.lat()))
            .bind(previous.is_some())
            .bind(previous.map_or(0.0, |r| r.center.lon()))
            .bind(previous.is_some())
            .bind(previous.map_or(0.0, |r| r.radius.km()))
            .bind(event.occurred_at)
            .bind(changed.as_deref())
            .bind(&*event.body)
            .bind(unix(now));
    }
    insert.execute(&mut *tx).await?;
    if dialect == Dialect::Postgres {
        // Delivered at commit: a rolled-back write notifies no one. The
        // newest seq is enough: other nodes read every event up to it.
        sqlx::query(&dialect.sql("SELECT pg_notify(?, ?)"))
            .bind(super::relay::EVENTS_CHANNEL)
            .bind(last.to_string())
            .execute(&mut *tx)
            .await?;
    }
    Ok(events)
}

async fn fetch_alert(conn: &mut AnyConnection, id: i64) -> DbResult<Option<Alert>> {
    fetch_alert_locking(conn, id, false).await
}

/// The alert, locked until the transaction ends when `lock` (PostgreSQL).
async fn fetch_alert_locking(
    conn: &mut AnyConnection,
    id: i64,
    lock: bool,
) -> DbResult<Option<Alert>> {
    let dialect = Dialect::of(conn);
    let for_update = if lock {
        dialect.for_update("a")
    } else {
        String::new()
    };
    let row = sqlx::query(&dialect.sql(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts a JOIN stores s ON s.id = a.store_id \
         WHERE a.id = ? AND a.erased_at IS NULL{for_update}"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(alert_from_row).transpose()
}

/// Tells every node, at commit (PostgreSQL; one SQLite node has no others),
/// and returns the announcement for this node's own network.
async fn announce_in(
    tx: &mut AnyConnection,
    announcement: relay::Announcement,
) -> DbResult<relay::Announcement> {
    let dialect = Dialect::of(tx);
    if dialect == Dialect::Postgres {
        sqlx::query(&dialect.sql("SELECT pg_notify(?, ?)"))
            .bind(relay::CONTROL_CHANNEL)
            .bind(announcement.payload())
            .execute(tx)
            .await?;
    }
    Ok(announcement)
}

/// The statement for one page of `GET /v1/alerts` before `before_id`,
/// newest first, at most `batch` rows: near a place, the newest of each
/// covering cell through its index, merged; otherwise by id.
fn alerts_page(
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
enum Bind {
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

/// The fields of `alert`, `update` and `pending` frames after `type`, `seq`
/// and `distance_km`.
fn alert_body(alert: &Alert) -> DbResult<String> {
    #[derive(Serialize)]
    struct Body<'a> {
        alert: &'a Alert,
    }
    to_json(&Body { alert })
}

/// The fields of an `update` frame: what changed (a JSON array), and the
/// alert. [`rewrite_bodies`] builds the same in SQL.
fn update_body(changed: &str, alert: &Alert) -> DbResult<String> {
    Ok(format!(
        "{{\"changed\":{changed},\"alert\":{}}}",
        to_json(alert)?
    ))
}

/// Replay shows the network as it is now (docs/API.md): after a change to
/// `alert`, the stored bodies of its earlier events are rewritten in the
/// same transaction, so that no withdrawn content stays in them. `alert`
/// and `update` events carry its current version while it is published,
/// `pending` events while it waits; otherwise their bodies are emptied
/// (withdrawn), and replay skips them. `retract` and `flag` bodies hold
/// no alert content and stay.
async fn rewrite_bodies(tx: &mut AnyConnection, alert: &Alert) -> DbResult<()> {
    let dialect = Dialect::of(tx);
    let published = alert.status == AlertStatus::Published;
    let pending = alert.status == AlertStatus::Pending;
    sqlx::query(&dialect.sql(
        "UPDATE events SET body = CASE \
         WHEN type = 'pending' AND ?1 THEN '{\"alert\":' || ?3 || '}' \
         WHEN type = 'alert' AND ?2 THEN '{\"alert\":' || ?3 || '}' \
         WHEN type = 'update' AND ?2 THEN '{\"changed\":' || COALESCE(changed, '[]') || ',\"alert\":' || ?3 || '}' \
         ELSE '' END \
         WHERE alert_id = ?4 AND type IN ('alert', 'update', 'pending')",
    ))
    .bind(pending)
    .bind(published)
    .bind(to_json(alert)?)
    .bind(alert.id)
    .execute(tx)
    .await?;
    Ok(())
}

/// The fields of a `retract` frame.
fn retract_body(alert_id: i64, reason: Option<&str>) -> DbResult<String> {
    #[derive(Serialize)]
    struct Body<'a> {
        alert_id: i64,
        reason: Option<&'a str>,
    }
    to_json(&Body { alert_id, reason })
}

/// The fields of a `flag` frame.
fn flag_body(flag: &Flag) -> DbResult<String> {
    #[derive(Serialize)]
    struct Body<'a> {
        alert_id: i64,
        store_id: i64,
        reason: &'a str,
    }
    to_json(&Body {
        alert_id: flag.alert_id,
        store_id: flag.store_id,
        reason: &flag.reason,
    })
}

/// Why members see a flagged alert withdrawn.
const HELD_REASON: &str = "held for review after reports from member stores";
/// What members are told of an alert an admin erased.
const ERASED_REASON: &str = "erased by the association";
/// What a retract of an alert past retention says once it is erased.
const EXPIRED_REASON: &str = "erased: past the retention period";
/// Why members see an edited alert withdrawn while its author is on probation.
const EDITED_REASON: &str = "edited; held until the association reviews the change";

fn to_json<T: Serialize>(value: &T) -> DbResult<String> {
    serde_json::to_string(value).map_err(|e| DbError::Corrupt(format!("cannot serialize: {e}")))
}

/// How many new alerts may wait for the writer before posters wait to queue.
const POST_QUEUE: usize = 1024;
/// The most new alerts one transaction commits.
const MAX_POSTS_PER_COMMIT: usize = 128;

/// A new alert waiting for its commit; its poster is answered after it.
struct QueuedPost {
    author: StoreRef,
    alert: ValidAlert,
    status: AlertStatus,
    status_reason: Option<String>,
    now: OffsetDateTime,
    idempotency: Option<IdempotencyKey>,
    done: oneshot::Sender<DbResult<Committed<Posted>>>,
}

/// Group commit: writes every new alert waiting in the queue in one
/// transaction, so that one fsync (SQLite's, or PostgreSQL's while it holds
/// the seq counter's row) serves them all. Each poster is answered only
/// after the commit that holds its alert, so a 201 still means durable;
/// their events take consecutive seqs in queue order.
async fn commit_posts(writer: AnyPool, mut queued: mpsc::Receiver<QueuedPost>) {
    let mut group = Vec::with_capacity(MAX_POSTS_PER_COMMIT);
    while queued.recv_many(&mut group, MAX_POSTS_PER_COMMIT).await > 0 {
        let posts = std::mem::take(&mut group);
        let started = std::time::Instant::now();
        match write_posts(&writer, &posts).await {
            Ok(written) => {
                tracing::debug!(posts = posts.len(), elapsed = ?started.elapsed(), "group committed");
                for (post, changed) in posts.into_iter().zip(written) {
                    let _ = post.done.send(Ok(changed));
                }
            }
            // The database is unreachable: every post fails alike, at
            // once, rather than each waiting for a connection in turn.
            Err(GroupFailed::Before(error)) if error.is_unavailable() => {
                tracing::warn!(%error, posts = posts.len(), "database unavailable; new alerts refused");
                let reason = error.to_string();
                for post in posts {
                    let _ = post.done.send(Err(DbError::Unavailable(reason.clone())));
                }
            }
            // Nothing committed: one bad post must not fail the others.
            Err(GroupFailed::Before(error)) if posts.len() > 1 => {
                tracing::warn!(%error, posts = posts.len(), "group commit failed; writing its alerts one by one");
                for post in posts {
                    let written = write_posts(&writer, std::slice::from_ref(&post)).await;
                    let _ = post.done.send(
                        written
                            .map_err(GroupFailed::into_error)
                            .map(|mut w| w.remove(0)),
                    );
                }
            }
            Err(GroupFailed::Before(error)) => {
                if let Some(post) = posts.into_iter().next() {
                    let _ = post.done.send(Err(error));
                }
            }
            // Whether the commit held is unknown: never write them twice.
            Err(GroupFailed::Commit(error)) => {
                tracing::error!(%error, posts = posts.len(), "group commit of new alerts failed");
                for post in posts {
                    let _ = post
                        .done
                        .send(Err(DbError::NotCommitted(error.to_string())));
                }
            }
        }
    }
}

/// Why a group of new alerts was not written.
enum GroupFailed {
    /// A statement failed: the transaction rolled back.
    Before(DbError),
    /// The commit itself failed.
    Commit(DbError),
}

impl GroupFailed {
    fn into_error(self) -> DbError {
        match self {
            GroupFailed::Before(error) | GroupFailed::Commit(error) => error,
        }
    }
}

/// Writes `posts` in one transaction, in order.
async fn write_posts(
    writer: &AnyPool,
    posts: &[QueuedPost],
) -> Result<Vec<Committed<Posted>>, GroupFailed> {
    let mut tx = writer
        .begin()
        .await
        .map_err(|e| GroupFailed::Before(e.into()))?;
    let written = insert_alerts(&mut tx, posts)
        .await
        .map_err(GroupFailed::Before)?;
    tx.commit()
        .await
        .map_err(|e| GroupFailed::Commit(e.into()))?;
    Ok(written)
}

/// Inserts new alerts and appends their events (`alert` when published,
/// `pending` when it waits), the counter row taken last.
/// Inserts new alerts and appends their events (`alert` when published,
/// `pending` when it waits), the counter row taken last. A post whose
/// idempotency key another request took meanwhile writes nothing.
async fn insert_alerts(
    tx: &mut AnyConnection,
    posts: &[QueuedPost],
) -> DbResult<Vec<Committed<Posted>>> {
    let mut posted = Vec::with_capacity(posts.len());
    for post in posts {
        let now = post.now;
        if let Some(key) = &post.idempotency {
            // Taken first, with its object filled in once the alert has its id.
            if !remember(tx, key, 201, "", now).await? {
                posted.push(None);
                continue;
            }
        }
        let alert = insert_alert(tx, post).await?;
        if let Some(key) = &post.idempotency {
            remembered_object(tx, key, &format!("alert:{}", alert.id)).await?;
        }
        posted.push(Some(alert));
    }
    let now = posts
        .first()
        .map_or(OffsetDateTime::UNIX_EPOCH, |post| post.now);
    let events = posted
        .iter()
        .flatten()
        .map(|alert| {
            let kind = if alert.status == AlertStatus::Published {
                EventKind::Alert
            } else {
                EventKind::Pending
            };
            Ok(NewEvent::plain(kind, alert, alert_body(alert)?))
        })
        .collect::<DbResult<Vec<_>>>()?;
    // One event per post that wrote its alert, in order; none for a taken key.
    let mut events = append_events(tx, events, now).await?.into_iter();
    posted
        .into_iter()
        .map(|alert| match alert {
            None => Ok(Committed::quiet(Posted::KeyTaken)),
            Some(alert) => match events.next() {
                Some(event) => Ok(Committed::with_events(
                    Posted::Created(Box::new(alert)),
                    vec![event],
                )),
                None => Err(DbError::Corrupt(format!("no event for alert {}", alert.id))),
            },
        })
        .collect()
}

/// Keeps an idempotency key with what a create answers, in its
/// transaction. False when the key is taken (within 24 hours): the caller
/// writes nothing. A key older than that is taken anew.
async fn remember(
    tx: &mut AnyConnection,
    key: &IdempotencyKey,
    status: u16,
    object: &str,
    now: OffsetDateTime,
) -> DbResult<bool> {
    let dialect = Dialect::of(tx);
    let taken = sqlx::query(&dialect.sql(
        "INSERT INTO idempotency_keys (account, key, fingerprint, status, object, created_at) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account, key) DO UPDATE SET \
         fingerprint = excluded.fingerprint, status = excluded.status, object = excluded.object, \
         created_at = excluded.created_at WHERE idempotency_keys.created_at < ?",
    ))
    .bind(&key.account)
    .bind(&key.key)
    .bind(&key.fingerprint)
    .bind(i64::from(status))
    .bind(object)
    .bind(unix(now))
    .bind(unix(now) - IDEMPOTENCY_SECONDS)
    .execute(tx)
    .await?;
    Ok(taken.rows_affected() == 1)
}

async fn remembered_object(
    tx: &mut AnyConnection,
    key: &IdempotencyKey,
    object: &str,
) -> DbResult<()> {
    let dialect = Dialect::of(tx);
    sqlx::query(
        &dialect.sql("UPDATE idempotency_keys SET object = ? WHERE account = ? AND key = ?"),
    )
    .bind(object)
    .bind(&key.account)
    .bind(&key.key)
    .execute(tx)
    .await?;
    Ok(())
}

/// Erases an alert's content in the writing transaction: its text,
/// suspects and vehicles, every stored event body about it but its
/// `retract`s, whose reasons (free text that may quote it) become
/// `reason`, and the reasons of its flags. The row stays, for statistics;
/// the audit trail stays as it is.
async fn erase_in(
    tx: &mut AnyConnection,
    id: i64,
    reason: &str,
    now: OffsetDateTime,
) -> DbResult<()> {
    let dialect = Dialect::of(tx);
    sqlx::query(&dialect.sql(
        "UPDATE alerts SET title = '', description = NULL, suspects = '[]', vehicles = '[]', \
         status_reason = NULL, erased_at = ?, updated_at = ?, version = version + 1 WHERE id = ?",
    ))
    .bind(unix(now))
    .bind(unix(now))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(&dialect.sql(
        "UPDATE events SET body = CASE WHEN type = 'retract' THEN ? ELSE '' END WHERE alert_id = ?",
    ))
    .bind(retract_body(id, Some(reason))?)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(&dialect.sql("UPDATE flags SET reason = '' WHERE alert_id = ?"))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// With `If-Match`, the refusal of a change to `alert` at another version.
fn precondition(alert: &Alert, if_match: Option<&IfMatch>) -> Option<AlertChange> {
    match if_match {
        Some(if_match) if !if_match.matches(alert.version) => {
            Some(AlertChange::PreconditionFailed(alert.version))
        }
        _ => None,
    }
}

/// Inserts a new alert.
async fn insert_alert(tx: &mut AnyConnection, post: &QueuedPost) -> DbResult<Alert> {
    let QueuedPost {
        author,
        alert,
        status,
        status_reason,
        now,
        ..
    } = post;
    let (status, now) = (*status, *now);
    let dialect = Dialect::of(tx);
    let published = status == AlertStatus::Published;
    let id: i64 = sqlx::query_scalar(&dialect.sql(
        "INSERT INTO alerts (store_id, kind, status, status_reason, title, description, occurred_at, lat, lon, \
         radius_km, suspects, vehicles, created_at, updated_at, published_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CASE WHEN ? THEN ? END) RETURNING id",
    ))
    .bind(author.id)
    .bind(alert.kind.as_str())
    .bind(status.as_str())
    .bind(status_reason)
    .bind(&alert.title)
    .bind(&alert.description)
    .bind(unix(alert.occurred_at))
    .bind(alert.reach.center.lat())
    .bind(alert.reach.center.lon())
    .bind(alert.reach.radius.km())
    .bind(to_json(&alert.suspects)?)
    .bind(to_json(&alert.vehicles)?)
    .bind(unix(now))
    .bind(unix(now))
    .bind(published)
    .bind(unix(now))
    .fetch_one(&mut *tx)
    .await?;
    Ok(Alert {
        id,
        kind: alert.kind,
        status,
        title: alert.title.clone(),
        description: alert.description.clone(),
        occurred_at: alert.occurred_at,
        location: alert.reach.center.location(),
        radius_km: alert.reach.radius.km(),
        suspects: alert.suspects.clone(),
        vehicles: alert.vehicles.clone(),
        store: author.clone(),
        verified: false,
        version: 1,
        status_reason: status_reason.clone(),
        created_at: now,
        updated_at: now,
    })
}

#[async_trait]
impl Membership for SqlStore {
    async fn create_store(
        &self,
        pledge: &ValidPledge,
        claim: &SecretHash,
        now: OffsetDateTime,
    ) -> DbResult<i64> {
        let mut tx = self.writer.begin().await?;
        let id: i64 = sqlx::query_scalar(&self.sql(
            "INSERT INTO stores (name, address, lat, lon, radius_km, contact_name, contact_email, phone, \
             status, claim_secret_hash, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?) RETURNING id",
        ))
        .bind(&pledge.name)
        .bind(&pledge.address)
        .bind(pledge.interest.center.lat())
        .bind(pledge.interest.center.lon())
        .bind(pledge.interest.radius.km())
        .bind(&pledge.contact_name)
        .bind(&pledge.contact_email)
        .bind(&pledge.phone)
        .bind(claim.as_str())
        .bind(unix(now))
        .bind(unix(now))
        .fetch_one(&mut *tx)
        .await?;
        audit(
            &mut tx,
            &Actor::store(id),
            "store.pledge",
            &format!("store:{id}"),
            None,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn claim_token(
        &self,
        store_id: i64,
        claim: &SecretHash,
        token: &SecretHash,
        now: OffsetDateTime,
    ) -> DbResult<ClaimOutcome> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(&self.sql(&format!(
            "SELECT status, status_reason, claim_secret_hash, claimed_at FROM stores WHERE id = ?{}",
            self.dialect.for_update("stores")
        )))
        .bind(store_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(ClaimOutcome::UnknownStore);
        };
        if row.try_get::<&str, _>("claim_secret_hash")? != claim.as_str() {
            return Ok(ClaimOutcome::WrongSecret);
        }
        let status: StoreStatus = parse_text(row.try_get::<&str, _>("status")?)?;
        let claimed = row.try_get::<Option<i64>, _>("claimed_at")?.is_some();
        let outcome = match status {
            StoreStatus::Pending => ClaimOutcome::Pending,
            StoreStatus::Rejected => ClaimOutcome::Rejected {
                reason: row.try_get("status_reason")?,
            },
            StoreStatus::Suspended => ClaimOutcome::Suspended {
                reason: row.try_get("status_reason")?,
            },
            StoreStatus::Approved if claimed => ClaimOutcome::AlreadyClaimed,
            StoreStatus::Approved => ClaimOutcome::Issued,
        };
        if outcome != ClaimOutcome::Issued {
            return Ok(outcome);
        }
        sqlx::query(&self.sql("UPDATE stores SET claimed_at = ? WHERE id = ?"))
            .bind(unix(now))
            .bind(store_id)
            .execute(&mut *tx)
            .await?;
        let token_id: i64 = sqlx::query_scalar(&self.sql(
            "INSERT INTO tokens (token_hash, role, store_id, label, created_at) \
             VALUES (?, 'store', ?, 'claimed with the pledge', ?) RETURNING id",
        ))
        .bind(token.as_str())
        .bind(store_id)
        .bind(unix(now))
        .fetch_one(&mut *tx)
        .await?;
        audit(
            &mut tx,
            &Actor::store(store_id),
            "token.create",
            &format!("token:{token_id}"),
            Some("claimed with the pledge"),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(ClaimOutcome::Issued)
    }

    async fn stores(&self, query: StoreQuery) -> DbResult<Vec<Store>> {
        let rows = sqlx::query(&self.sql(&format!(
            "SELECT {STORE_COLUMNS} FROM stores WHERE (?1 IS NULL OR status = ?1) \
             AND (?2 = 0 OR move_requested_at IS NOT NULL) ORDER BY id"
        )))
        .bind(query.status.map(StoreStatus::as_str))
        .bind(i64::from(query.pending_move))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(store_from_row).collect()
    }

    async fn store(&self, id: i64) -> DbResult<Option<Store>> {
        let row =
            sqlx::query(&self.sql(&format!("SELECT {STORE_COLUMNS} FROM stores WHERE id = ?")))
                .bind(id)
                .fetch_optional(&self.reader)
                .await?;
        row.as_ref().map(store_from_row).transpose()
    }

    async fn change_membership(
        &self,
        id: i64,
        action: MembershipAction,
        reason: Option<&str>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Transition<Store, StoreStatus>>> {
        debug_assert_ne!(action, MembershipAction::Reinstate, "use reinstate_store");
        let mut tx = self.writer.begin().await?;
        let outcome = transition_store(&mut tx, id, action, reason, actor, now).await?;
        let mut effects = Effects::default();
        if matches!(outcome, Transition::Done(_)) {
            if action == MembershipAction::Suspend {
                effects
                    .announcements
                    .push(announce_in(&mut tx, relay::Announcement::StoreSuspended(id)).await?);
            }
            tx.commit().await?;
        }
        Ok(Committed::new(outcome, effects))
    }

    async fn reinstate_store(
        &self,
        id: i64,
        reason: Option<&str>,
        claim: &SecretHash,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Transition<Reinstated, StoreStatus>>> {
        let mut tx = self.writer.begin().await?;
        let store =
            match transition_store(&mut tx, id, MembershipAction::Reinstate, reason, actor, now)
                .await?
            {
                Transition::Done(store) => store,
                Transition::NotFound => return Ok(Committed::quiet(Transition::NotFound)),
                Transition::Conflict(status) => {
                    return Ok(Committed::quiet(Transition::Conflict(status)))
                }
            };
        // The new claim secret replaces the old one, which no longer works.
        sqlx::query(
            &self.sql("UPDATE stores SET claim_secret_hash = ?, claimed_at = NULL WHERE id = ?"),
        )
        .bind(claim.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let revoked_tokens: Vec<i64> = sqlx::query_scalar(&self.sql(
            "UPDATE tokens SET revoked_at = ? WHERE store_id = ? AND revoked_at IS NULL RETURNING id",
        ))
        .bind(unix(now))
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let mut effects = Effects::default();
        for token_id in &revoked_tokens {
            audit(
                &mut tx,
                actor,
                "token.revoke",
                &format!("token:{token_id}"),
                Some("reinstatement revokes every token of the store"),
                now,
            )
            .await?;
            effects
                .announcements
                .push(announce_in(&mut tx, relay::Announcement::TokenRevoked(*token_id)).await?);
        }
        tx.commit().await?;
        let reinstated = Reinstated {
            store,
            revoked_tokens,
        };
        Ok(Committed::new(Transition::Done(reinstated), effects))
    }

    async fn change_area(
        &self,
        id: i64,
        change: AreaChange,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Option<Store>>> {
        let mut tx = self.writer.begin().await?;
        let Some(store) = store_locked(&mut tx, id).await? else {
            return Ok(Committed::quiet(None));
        };
        let radius = change.radius.map_or(store.radius_km, RadiusKm::km);
        let pending = match change.move_to {
            None => store
                .pending_move
                .map(|pending| (pending.location, unix(pending.requested_at))),
            Some(to) if to.lat() == store.location.lat && to.lon() == store.location.lon => None,
            Some(to) => Some((
                Location {
                    lat: to.lat(),
                    lon: to.lon(),
                },
                unix(now),
            )),
        };
        let row = sqlx::query(&self.sql(&format!(
            "UPDATE stores SET radius_km = ?, pending_lat = ?, pending_lon = ?, move_requested_at = ?, \
             updated_at = ? WHERE id = ? RETURNING {STORE_COLUMNS}"
        )))
        .bind(radius)
        .bind(pending.map(|(at, _)| at.lat))
        .bind(pending.map(|(at, _)| at.lon))
        .bind(pending.map(|(_, requested)| requested))
        .bind(unix(now))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let mut effects = Effects::default();
        if change.radius.is_some() {
            effects
                .announcements
                .push(announce_in(&mut tx, relay::Announcement::StoreMoved(id)).await?);
        }
        tx.commit().await?;
        Ok(Committed::new(Some(store_from_row(&row)?), effects))
    }

    async fn decide_move(
        &self,
        id: i64,
        decision: MoveDecision,
        reason: Option<&str>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<MoveOutcome>> {
        let mut tx = self.writer.begin().await?;
        let Some(store) = store_locked(&mut tx, id).await? else {
            return Ok(Committed::quiet(MoveOutcome::NotFound));
        };
        let Some(pending) = store.pending_move else {
            return Ok(Committed::quiet(MoveOutcome::NoPendingMove));
        };
        let moved_to = match decision {
            MoveDecision::Approve => pending.location,
            MoveDecision::Reject => store.location,
        };
        let row = sqlx::query(&self.sql(&format!(
            "UPDATE stores SET lat = ?, lon = ?, pending_lat = NULL, pending_lon = NULL, \
             move_requested_at = NULL, updated_at = ? WHERE id = ? RETURNING {STORE_COLUMNS}"
        )))
        .bind(moved_to.lat)
        .bind(moved_to.lon)
        .bind(unix(now))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let mut note = format!(
            "{} the move to {:.5}, {:.5}",
            decision.verdict(),
            pending.location.lat,
            pending.location.lon
        );
        if let Some(reason) = reason {
            note.push_str(": ");
            note.push_str(reason);
        }
        audit(
            &mut tx,
            actor,
            "store.move",
            &format!("store:{id}"),
            Some(&note),
            now,
        )
        .await?;
        let mut effects = Effects::default();
        if decision == MoveDecision::Approve {
            effects
                .announcements
                .push(announce_in(&mut tx, relay::Announcement::StoreMoved(id)).await?);
        }
        tx.commit().await?;
        let store = Box::new(store_from_row(&row)?);
        Ok(Committed::new(MoveOutcome::Done(store), effects))
    }
}

/// A store, read and locked in the writing transaction.
async fn store_locked(tx: &mut AnyConnection, id: i64) -> DbResult<Option<Store>> {
    let dialect = Dialect::of(tx);
    let row = sqlx::query(&dialect.sql(&format!(
        "SELECT {STORE_COLUMNS} FROM stores WHERE id = ?{}",
        dialect.for_update("stores")
    )))
    .bind(id)
    .fetch_optional(tx)
    .await?;
    row.as_ref().map(store_from_row).transpose()
}

/// Moves a store from a status the action starts from to the one it leads
/// to, with its audit entry, inside the caller's transaction.
async fn transition_store(
    tx: &mut AnyConnection,
    id: i64,
    action: MembershipAction,
    reason: Option<&str>,
    actor: &Actor,
    now: OffsetDateTime,
) -> DbResult<Transition<Store, StoreStatus>> {
    let dialect = Dialect::of(tx);
    let (from, to) = action.transition();
    let current: Option<String> = sqlx::query_scalar(&dialect.sql(&format!(
        "SELECT status FROM stores WHERE id = ?{}",
        dialect.for_update("stores")
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(current) = current else {
        return Ok(Transition::NotFound);
    };
    let current: StoreStatus = parse_text(&current)?;
    if !from.contains(&current) {
        return Ok(Transition::Conflict(current));
    }
    let row = sqlx::query(&dialect.sql(&format!(
        "UPDATE stores SET status = ?, status_reason = ?, updated_at = ? WHERE id = ? RETURNING {STORE_COLUMNS}"
    )))
    .bind(to.as_str())
    .bind(reason)
    .bind(unix(now))
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    audit(
        tx,
        actor,
        action.audit_name(),
        &format!("store:{id}"),
        reason,
        now,
    )
    .await?;
    Ok(Transition::Done(store_from_row(&row)?))
}

#[async_trait]
impl Tokens for SqlStore {
    async fn create_token(
        &self,
        token: NewToken<'_>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<TokenCreation> {
        let mut tx = self.writer.begin().await?;
        if let Some(store_id) = token.store_id {
            // The store's row is locked first, so that two creates for one
            // store (on any node) count one after the other.
            if store_locked(&mut tx, store_id).await?.is_none() {
                return Err(DbError::Corrupt(format!("no store {store_id} for a token")));
            }
            let held: i64 = sqlx::query_scalar(
                &self.sql("SELECT COUNT(*) FROM tokens WHERE store_id = ? AND revoked_at IS NULL"),
            )
            .bind(store_id)
            .fetch_one(&mut *tx)
            .await?;
            if held >= MAX_STORE_TOKENS as i64 {
                return Ok(TokenCreation::TooMany);
            }
        }
        let row = sqlx::query(&self.sql(&format!(
            "INSERT INTO tokens (token_hash, role, store_id, label, created_at) VALUES (?, ?, ?, ?, ?) \
             RETURNING {TOKEN_COLUMNS}"
        )))
        .bind(token.hash.as_str())
        .bind(token.role.as_str())
        .bind(token.store_id)
        .bind(token.label)
        .bind(unix(now))
        .fetch_one(&mut *tx)
        .await?;
        let info = token_from_row(&row)?;
        audit(
            &mut tx,
            actor,
            "token.create",
            &format!("token:{}", info.id),
            Some(token.label),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(TokenCreation::Created(info))
    }

    async fn credential(&self, hash: &SecretHash) -> DbResult<Option<Credential>> {
        // One statement: every request authenticates.
        static CREDENTIAL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {}, {} FROM tokens t LEFT JOIN stores s ON s.id = t.store_id \
                 WHERE t.token_hash = ? AND t.revoked_at IS NULL",
                columns_of("t", TOKEN_COLUMNS, false),
                columns_of("s", STORE_COLUMNS, true)
            )
        });
        let row = sqlx::query(&self.sql(&CREDENTIAL))
            .bind(hash.as_str())
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let token = token_from_row(&row)?;
        let store = match row.try_get::<Option<i64>, _>("s_id")? {
            Some(_) => Some(store_from_columns(&row, "s_")?),
            None => None,
        };
        if token.role == Role::Store && store.is_none() {
            return Err(DbError::Corrupt(format!("token {} has no store", token.id)));
        }
        Ok(Some(Credential { token, store }))
    }

    fn token_used(
        &self,
        token: &TokenInfo,
        now: OffsetDateTime,
    ) -> Option<BoxFuture<'static, DbResult<()>>> {
        let now = unix(now);
        let fresh = token
            .last_used_at
            .is_some_and(|at| unix(at) > now - LAST_USED_EVERY);
        if fresh || !self.token_uses.claim_write(token.id, now) {
            return None;
        }
        let statement = self
            .sql(
                "UPDATE tokens SET last_used_at = ? WHERE id = ? \
                 AND (last_used_at IS NULL OR last_used_at <= ?)",
            )
            .into_owned();
        let (writer, token_id) = (self.writer.clone(), token.id);
        Some(Box::pin(async move {
            sqlx::query(&statement)
                .bind(now)
                .bind(token_id)
                .bind(now - LAST_USED_EVERY)
                .execute(&writer)
                .await?;
            Ok(())
        }))
    }

    async fn tokens(&self, owner: TokenOwner) -> DbResult<Vec<TokenInfo>> {
        let query = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE {OWNED_BY} ORDER BY id");
        let rows = sqlx::query(&self.sql(&query))
            .bind(owner.store_id())
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn token_active(&self, id: i64) -> DbResult<bool> {
        let active: Option<i64> = sqlx::query_scalar(
            &self.sql("SELECT id FROM tokens WHERE id = ? AND revoked_at IS NULL"),
        )
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(active.is_some())
    }

    async fn revoke_token(
        &self,
        owner: TokenOwner,
        id: i64,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Option<TokenInfo>>> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(&self.sql(&format!(
            "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? AND {OWNED_BY} \
             RETURNING {TOKEN_COLUMNS}"
        )))
        .bind(unix(now))
        .bind(id)
        .bind(owner.store_id())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Committed::quiet(None));
        };
        audit(
            &mut tx,
            actor,
            "token.revoke",
            &format!("token:{id}"),
            None,
            now,
        )
        .await?;
        let revoked = announce_in(&mut tx, relay::Announcement::TokenRevoked(id)).await?;
        tx.commit().await?;
        let effects = Effects {
            announcements: vec![revoked],
            ..Effects::default()
        };
        Ok(Committed::new(Some(token_from_row(&row)?), effects))
    }
}

#[async_trait]
impl Alerts for SqlStore {
    async fn post_alert(
        &self,
        author: &StoreRef,
        alert: &ValidAlert,
        admission: &Admission,
        idempotency: Option<IdempotencyKey>,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Posted>> {
        let (done, committed) = oneshot::channel();
        let post = QueuedPost {
            author: author.clone(),
            alert: alert.clone(),
            status: admission.status,
            status_reason: admission.reason.clone(),
            now: crate::domain::alert::whole_seconds(now),
            idempotency,
            done,
        };
        let stopped = || DbError::NotCommitted("the writer of new alerts stopped".to_owned());
        self.posts.send(post).await.map_err(|_| stopped())?;
        committed.await.map_err(|_| stopped())?
    }

    async fn alert(&self, id: i64) -> DbResult<Option<Alert>> {
        fetch_alert(&mut *self.reader.acquire().await?, id).await
    }

    async fn alerts(&self, query: &AlertQuery) -> DbResult<AlertList> {
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
            let sql = self.sql(&sql);
            let rows = binds
                .iter()
                .fold(sqlx::query(&sql), |q, bind| bind.apply(q))
                .fetch_all(&self.reader)
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

    async fn published_count(&self, store_id: i64, at_most: i64) -> DbResult<i64> {
        let count: i64 = sqlx::query_scalar(&self.sql(
            "SELECT COUNT(*) FROM (SELECT 1 FROM alerts WHERE store_id = ? AND published_at IS NOT NULL \
             LIMIT ?) AS published",
        ))
        .bind(store_id)
        .bind(at_most)
        .fetch_one(&self.reader)
        .await?;
        Ok(count)
    }

    async fn edit_alert(
        &self,
        id: i64,
        edit: Edit<'_>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<AlertChange>> {
        let edited = edit.alert;
        let now = crate::domain::alert::whole_seconds(now);
        let mut tx = self.writer.begin().await?;
        let Some(before) = fetch_alert_locking(&mut tx, id, true).await? else {
            return Ok(Committed::quiet(AlertChange::NotFound));
        };
        if let Some(refused) = precondition(&before, edit.if_match) {
            return Ok(Committed::quiet(refused));
        }
        if !matches!(before.status, AlertStatus::Pending | AlertStatus::Published) {
            return Ok(Committed::quiet(AlertChange::Conflict(before.status)));
        }
        // The edit was built on what the handler read: if the alert moved on
        // since, whatever If-Match allowed, applying it would undo that change.
        if before != *edit.seen {
            return Ok(Committed::quiet(match edit.if_match {
                Some(_) => AlertChange::PreconditionFailed(before.version),
                None => AlertChange::Stale,
            }));
        }
        let held = edit.hold && before.status == AlertStatus::Published;
        sqlx::query(&self.sql(
            "UPDATE alerts SET kind = ?, title = ?, description = ?, lat = ?, lon = ?, radius_km = ?, \
             suspects = ?, vehicles = ?, updated_at = ?, version = version + 1, \
             verified = CASE WHEN ? THEN 0 ELSE verified END, \
             status = CASE WHEN ? THEN 'pending' ELSE status END, \
             status_reason = CASE WHEN ? THEN ? ELSE status_reason END WHERE id = ?",
        ))
        .bind(edited.kind.as_str())
        .bind(&edited.title)
        .bind(&edited.description)
        .bind(edited.reach.center.lat())
        .bind(edited.reach.center.lon())
        .bind(edited.reach.radius.km())
        .bind(to_json(&edited.suspects)?)
        .bind(to_json(&edited.vehicles)?)
        .bind(unix(now))
        .bind(edit.by_author)
        .bind(held)
        .bind(held)
        .bind(EDITED_REASON)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            actor,
            "alert.edit",
            &format!("alert:{id}"),
            None,
            now,
        )
        .await?;
        let after = fetch_alert(&mut tx, id)
            .await?
            .ok_or_else(|| DbError::Corrupt(format!("alert {id} vanished")))?;
        rewrite_bodies(&mut tx, &after).await?;
        // Events last: the counter row is taken after the alert's row.
        let new_events = if after.status == AlertStatus::Published {
            vec![NewEvent::update(&before, &after)?]
        } else if held {
            // Withdrawn where it was seen, until a moderator approves the edit.
            Vec::from(NewEvent::held(&before, &after, EDITED_REASON)?)
        } else {
            vec![NewEvent::plain(
                EventKind::Pending,
                &after,
                alert_body(&after)?,
            )]
        };
        let events = append_events(&mut tx, new_events, now).await?;
        tx.commit().await?;
        Ok(Committed::with_events(
            AlertChange::Done(Box::new(after)),
            events,
        ))
    }

    async fn moderate_alert(
        &self,
        id: i64,
        action: AlertAction,
        reason: Option<&str>,
        if_match: Option<&IfMatch>,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<AlertChange>> {
        let (from, to) = action.transition();
        let now = crate::domain::alert::whole_seconds(now);
        let mut tx = self.writer.begin().await?;
        let Some(before) = fetch_alert_locking(&mut tx, id, true).await? else {
            return Ok(Committed::quiet(AlertChange::NotFound));
        };
        if let Some(refused) = precondition(&before, if_match) {
            return Ok(Committed::quiet(refused));
        }
        if !from.contains(&before.status) {
            return Ok(Committed::quiet(AlertChange::Conflict(before.status)));
        }
        sqlx::query(&self.sql(
            "UPDATE alerts SET status = ?, status_reason = CASE WHEN ? THEN ? ELSE status_reason END, \
             updated_at = ?, version = version + 1, verified = CASE WHEN ? THEN 1 ELSE verified END, \
             published_at = CASE WHEN ? = 'published' THEN COALESCE(published_at, ?) ELSE published_at END \
             WHERE id = ?",
        ))
        .bind(to.as_str())
        .bind(action != AlertAction::Verify)
        .bind(reason.filter(|_| action.needs_reason()))
        .bind(unix(now))
        .bind(action == AlertAction::Verify)
        .bind(to.as_str())
        .bind(unix(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        // A moderator's decision settles the flags raised so far.
        sqlx::query(
            &self
                .sql("UPDATE flags SET resolved_at = ? WHERE alert_id = ? AND resolved_at IS NULL"),
        )
        .bind(unix(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let alert = fetch_alert(&mut tx, id)
            .await?
            .ok_or_else(|| DbError::Corrupt(format!("alert {id} vanished")))?;
        audit(
            &mut tx,
            actor,
            action.audit_name(),
            &format!("alert:{id}"),
            reason,
            now,
        )
        .await?;
        rewrite_bodies(&mut tx, &alert).await?;
        // Events last: the counter row is taken after the alert's row.
        let new_event = match action.event() {
            Some(EventKind::Retract) => Some(NewEvent::plain(
                EventKind::Retract,
                &alert,
                retract_body(id, reason)?,
            )),
            Some(EventKind::Update) => Some(NewEvent::update(&before, &alert)?),
            Some(kind) => Some(NewEvent::plain(kind, &alert, alert_body(&alert)?)),
            None => None,
        };
        let events = append_events(&mut tx, new_event.into_iter().collect(), now).await?;
        tx.commit().await?;
        Ok(Committed::with_events(
            AlertChange::Done(Box::new(alert)),
            events,
        ))
    }

    async fn flag_alert(
        &self,
        id: i64,
        store_id: i64,
        reason: &str,
        threshold: u32,
        idempotency: Option<IdempotencyKey>,
        now: OffsetDateTime,
    ) -> DbResult<Committed<FlagOutcome>> {
        let now = crate::domain::alert::whole_seconds(now);
        let mut tx = self.writer.begin().await?;
        let Some(alert) = fetch_alert_locking(&mut tx, id, true).await? else {
            return Ok(Committed::quiet(FlagOutcome::NotFound));
        };
        // The key first: a retry racing its first try on another node waits
        // for it here and then answers what it made, not `already_flagged`
        // or, if that flag held the alert, `invalid_transition`.
        if let Some(key) = &idempotency {
            let object = format!("flag:{id}:{store_id}");
            if !remember(&mut tx, key, 201, &object, now).await? {
                return Ok(Committed::quiet(FlagOutcome::KeyTaken));
            }
        }
        if alert.status != AlertStatus::Published {
            return Ok(Committed::quiet(FlagOutcome::NotFlaggable(alert.status)));
        }
        let inserted = sqlx::query(&self.sql(
            "INSERT INTO flags (alert_id, store_id, reason, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (alert_id, store_id) DO NOTHING",
        ))
        .bind(id)
        .bind(store_id)
        .bind(reason)
        .bind(unix(now))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(Committed::quiet(FlagOutcome::AlreadyFlagged));
        }
        let flag = Flag {
            alert_id: id,
            store_id,
            reason: reason.to_owned(),
            created_at: now,
        };
        audit(
            &mut tx,
            &Actor::store(store_id),
            "alert.flag",
            &format!("alert:{id}"),
            Some(reason),
            now,
        )
        .await?;
        let flaggers: i64 = sqlx::query_scalar(
            &self.sql("SELECT COUNT(*) FROM flags WHERE alert_id = ? AND resolved_at IS NULL"),
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let held = flaggers >= i64::from(threshold);
        let mut waiting = None;
        if held {
            sqlx::query(&self.sql(
                "UPDATE alerts SET status = 'pending', status_reason = ?, updated_at = ?, \
                 version = version + 1 WHERE id = ?",
            ))
            .bind(HELD_REASON)
            .bind(unix(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let actor = Actor(format!("{threshold} flags"));
            let object = format!("alert:{id}");
            audit(
                &mut tx,
                &actor,
                "alert.hold",
                &object,
                Some(HELD_REASON),
                now,
            )
            .await?;
            let held_alert = fetch_alert(&mut tx, id)
                .await?
                .ok_or_else(|| DbError::Corrupt(format!("alert {id} vanished")))?;
            rewrite_bodies(&mut tx, &held_alert).await?;
            waiting = Some(held_alert);
        }
        // Events last: the counter row that orders the whole network is
        // held as briefly as possible, and always after the alert's row.
        let mut new_events = vec![NewEvent::plain(EventKind::Flag, &alert, flag_body(&flag)?)];
        if let Some(waiting) = &waiting {
            new_events.extend(NewEvent::held(&alert, waiting, HELD_REASON)?);
        }
        let events = append_events(&mut tx, new_events, now).await?;
        tx.commit().await?;
        Ok(Committed::with_events(
            FlagOutcome::Flagged { flag, held },
            events,
        ))
    }

    async fn flag(&self, alert_id: i64, store_id: i64) -> DbResult<Option<Flag>> {
        let row = sqlx::query(
            &self.sql("SELECT reason, created_at FROM flags WHERE alert_id = ? AND store_id = ?"),
        )
        .bind(alert_id)
        .bind(store_id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            Ok(Flag {
                alert_id,
                store_id,
                reason: row.try_get("reason")?,
                created_at: from_unix(row.try_get("created_at")?)?,
            })
        })
        .transpose()
    }

    async fn erase_alert(
        &self,
        id: i64,
        reason: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> DbResult<Committed<Option<Alert>>> {
        let now = crate::domain::alert::whole_seconds(now);
        let mut tx = self.writer.begin().await?;
        let Some(alert) = fetch_alert_locking(&mut tx, id, true).await? else {
            return Ok(Committed::quiet(None));
        };
        erase_in(&mut tx, id, ERASED_REASON, now).await?;
        audit(
            &mut tx,
            actor,
            "alert.erase",
            &format!("alert:{id}"),
            Some(reason),
            now,
        )
        .await?;
        // Stores that may have shown it drop it; the admin's reason stays
        // in the audit trail, which members never read.
        let mut new_events = Vec::new();
        if alert.status == AlertStatus::Published {
            new_events.push(NewEvent::plain(
                EventKind::Retract,
                &alert,
                retract_body(id, Some(ERASED_REASON))?,
            ));
        }
        let events = append_events(&mut tx, new_events, now).await?;
        tx.commit().await?;
        self.checkpoint_erasure().await;
        Ok(Committed::with_events(Some(alert), events))
    }

    async fn erase_expired(
        &self,
        cutoff: i64,
        limit: i64,
        now: OffsetDateTime,
    ) -> DbResult<Vec<i64>> {
        let now = crate::domain::alert::whole_seconds(now);
        let mut tx = self.writer.begin().await?;
        // Nodes sweeping at once on PostgreSQL each take other alerts.
        let skip_locked = match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let ids: Vec<i64> = sqlx::query_scalar(&self.sql(&format!(
            "SELECT id FROM alerts WHERE occurred_at < ? AND erased_at IS NULL ORDER BY id LIMIT ?{skip_locked}"
        )))
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let actor = Actor("retention".to_owned());
        for id in &ids {
            erase_in(&mut tx, *id, EXPIRED_REASON, now).await?;
            audit(
                &mut tx,
                &actor,
                "alert.erase",
                &format!("alert:{id}"),
                Some("happened longer ago than the retention period"),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        if !ids.is_empty() {
            self.checkpoint_erasure().await;
        }
        Ok(ids)
    }

    async fn moderation_queue(&self, not_before: i64) -> DbResult<ModerationQueue> {
        let pending = sqlx::query(&self.sql(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts a JOIN stores s ON s.id = a.store_id \
             WHERE a.status = 'pending' AND a.erased_at IS NULL AND a.occurred_at >= ? AND NOT EXISTS \
             (SELECT 1 FROM flags f WHERE f.alert_id = a.id AND f.resolved_at IS NULL) ORDER BY a.id"
        )))
        .bind(not_before)
        .fetch_all(&self.reader)
        .await?;
        let flagged = sqlx::query(&self.sql(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts a JOIN stores s ON s.id = a.store_id \
             WHERE a.erased_at IS NULL AND a.occurred_at >= ? \
             AND EXISTS (SELECT 1 FROM flags f WHERE f.alert_id = a.id AND f.resolved_at IS NULL) \
             ORDER BY (SELECT MIN(created_at) FROM flags f WHERE f.alert_id = a.id AND f.resolved_at IS NULL), a.id"
        )))
        .bind(not_before)
        .fetch_all(&self.reader)
        .await?;
        let mut queue = ModerationQueue {
            pending: pending
                .iter()
                .map(alert_from_row)
                .collect::<DbResult<_>>()?,
            flagged: Vec::with_capacity(flagged.len()),
        };
        for row in &flagged {
            let alert = alert_from_row(row)?;
            let flags = sqlx::query(&self.sql(
                "SELECT store_id, reason, created_at FROM flags WHERE alert_id = ? AND resolved_at IS NULL \
                 ORDER BY created_at, store_id",
            ))
            .bind(alert.id)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(|flag| {
                Ok(Flag {
                    alert_id: alert.id,
                    store_id: flag.try_get("store_id")?,
                    reason: flag.try_get("reason")?,
                    created_at: from_unix(flag.try_get("created_at")?)?,
                })
            })
            .collect::<DbResult<Vec<Flag>>>()?;
            queue.flagged.push(FlaggedAlert { alert, flags });
        }
        Ok(queue)
    }
}

#[async_trait]
impl Events for SqlStore {
    async fn head(&self) -> DbResult<i64> {
        let head: Option<i64> = sqlx::query_scalar(&self.sql("SELECT MAX(seq) FROM events"))
            .fetch_one(&self.reader)
            .await?;
        Ok(head.unwrap_or(0))
    }

    async fn events_after(&self, after: i64, limit: i64) -> DbResult<Vec<Event>> {
        let rows = sqlx::query(&self.sql(
            "SELECT seq, type, alert_id, store_id, lat, lon, radius_km, previous_lat, previous_lon, \
             previous_radius_km, occurred_at, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn ping(&self) -> DbResult<()> {
        sqlx::query(&self.sql("SELECT 1"))
            .execute(&self.reader)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Idempotency for SqlStore {
    async fn remembered(&self, account: &str, key: &str) -> DbResult<Option<Remembered>> {
        let row = sqlx::query(&self.sql(
            "SELECT fingerprint, status, object, created_at FROM idempotency_keys \
             WHERE account = ? AND key = ?",
        ))
        .bind(account)
        .bind(key)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            let status: i64 = row.try_get("status")?;
            Ok(Remembered {
                fingerprint: row.try_get("fingerprint")?,
                status: u16::try_from(status)
                    .map_err(|_| DbError::Corrupt(format!("idempotency status {status}")))?,
                object: row.try_get("object")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn forget_keys_before(&self, before: i64) -> DbResult<u64> {
        let done = sqlx::query(&self.sql("DELETE FROM idempotency_keys WHERE created_at < ?"))
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl AuditTrail for SqlStore {
    async fn audit(
        &self,
        before_id: Option<i64>,
        limit: usize,
    ) -> DbResult<(Vec<AuditEntry>, bool)> {
        let rows = sqlx::query(&self.sql(
            "SELECT id, at, actor, action, object, reason FROM audit WHERE (?1 IS NULL OR id < ?1) \
             ORDER BY id DESC LIMIT ?2",
        ))
        .bind(before_id)
        .bind(limit as i64 + 1)
        .fetch_all(&self.reader)
        .await?;
        let mut entries = rows
            .iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    at: from_unix(row.try_get("at")?)?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    object: row.try_get("object")?,
                    reason: row.try_get("reason")?,
                })
            })
            .collect::<DbResult<Vec<AuditEntry>>>()?;
        let more = entries.len() > limit;
        entries.truncate(limit);
        Ok((entries, more))
    }
}

#[async_trait]
impl Census for SqlStore {
    async fn alert_counts(&self) -> DbResult<Vec<AlertCount>> {
        let rows = sqlx::query(
            &self.sql("SELECT kind, status, COUNT(*) AS n FROM alerts GROUP BY kind, status"),
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AlertCount {
                    kind: row.try_get("kind")?,
                    status: row.try_get("status")?,
                    count: row.try_get("n")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        let sql = "UPDATE t SET a = ?, b = 'why?' WHERE id = ?";
        assert_eq!(Dialect::Sqlite.sql(sql), sql);
        assert_eq!(
            Dialect::Postgres.sql(sql),
            "UPDATE t SET a = $1, b = 'why?' WHERE id = $2"
        );
        assert_eq!(
            Dialect::Postgres.sql("(?1 IS NULL OR id < ?1) LIMIT ?2"),
            "($1 IS NULL OR id < $1) LIMIT $2"
        );
        assert_eq!(Dialect::Postgres.for_update("a"), " FOR UPDATE OF a");
        assert_eq!(Dialect::Sqlite.for_update("a"), "");
    }

    #[test]
    fn a_burst_of_uses_writes_last_used_at_once_a_minute() {
        let uses = TokenUses::default();
        assert!(uses.claim_write(7, 1_000));
        assert!(!uses.claim_write(7, 1_000));
        assert!(!uses.claim_write(7, 1_059));
        assert!(uses.claim_write(8, 1_001), "per token");
        assert!(uses.claim_write(7, 1_060), "a minute later");
    }

    #[test]
    fn sqlite_urls_get_an_open_mode() {
        assert_eq!(with_mode("sqlite:p4p.db", "rwc"), "sqlite:p4p.db?mode=rwc");
        assert_eq!(
            with_mode("sqlite:p4p.db?cache=shared", "ro"),
            "sqlite:p4p.db?cache=shared&mode=ro"
        );
        assert_eq!(
            with_mode("sqlite:x.db?mode=ro", "rwc"),
            "sqlite:x.db?mode=ro"
        );
        assert_eq!(
            Dialect::of_url("postgresql://h/db"),
            Some(Dialect::Postgres)
        );
        assert_eq!(Dialect::of_url("mysql://h/db"), None);
    }
}
