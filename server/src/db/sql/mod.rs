//! The relational storage, for SQLite and PostgreSQL alike: the only SQL.
//!
//! One implementation over `sqlx::Any`; statements are written once, as
//! both databases read them: placeholders numbered (`$1`, `$2`...), which
//! SQLite reads as PostgreSQL does. The store knows its [`Dialect`] and
//! hands it to what differs: row locks and notifications (PostgreSQL only)
//! and the checkpoint after an erasure (SQLite only).
//!
//! SQLite is the embedded default: one file, WAL, foreign keys on. Its
//! writes go through a pool of one connection, so they commit one at a time
//! and never wait on SQLITE_BUSY; reads use their own pool. PostgreSQL
//! carries several server nodes: every event takes its `seq` from one
//! counter row inside its transaction, so commits serialize on that row and
//! `seq` order is commit order across all nodes.
//!
//! This file owns the store itself: connecting, the pools and SQLite's
//! pragmas, and the dialect. Each concern has its file:
//! - `rows`: the columns read and how a row becomes a value;
//! - `events`: the event log, its frame bodies and the announcements;
//! - `writer`: the group-commit writer of new alerts;
//! - `near`: the "alerts near a place" listing, and `binds`, the values of
//!   the statements built at run time;
//! - `membership`, `tokens`, `alerts` (with `moderation` and `erasure`),
//!   `idempotency`, `audit`: the trait implementations.

mod alerts;
mod audit;
mod binds;
mod erasure;
mod events;
mod idempotency;
mod membership;
mod moderation;
mod near;
mod rows;
mod tokens;
mod writer;

use futures_util::future::BoxFuture;
use serde::Serialize;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Executor};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::{DbError, DbResult};
use tokens::TokenUses;
use writer::{commit_posts, QueuedPost, POST_QUEUE};

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

    /// Locks the rows a transaction reads before it decides on a change,
    /// so that concurrent writers (other nodes) wait. SQLite writes one
    /// transaction at a time already.
    fn for_update(self, of: &str) -> String {
        match self {
            Dialect::Postgres => format!(" FOR UPDATE OF {of}"),
            Dialect::Sqlite => String::new(),
        }
    }

    /// Skips the rows another transaction has locked: nodes sweeping at
    /// once on PostgreSQL each take other rows.
    fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        }
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
        tokio::spawn(commit_posts(writer.clone(), dialect, queued));
        SqlStore {
            dialect,
            writer,
            reader,
            posts,
            token_uses: TokenUses::default(),
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

fn to_json<T: Serialize>(value: &T) -> DbResult<String> {
    serde_json::to_string(value).map_err(|e| DbError::Corrupt(format!("cannot serialize: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_postgres_locks_rows() {
        assert_eq!(Dialect::Postgres.for_update("a"), " FOR UPDATE OF a");
        assert_eq!(Dialect::Sqlite.for_update("a"), "");
        assert_eq!(Dialect::Sqlite.skip_locked(), "");
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
