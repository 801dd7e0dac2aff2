//! The errors of the storage layer.

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    /// The write may or may not have been committed.
    #[error("the write was not confirmed: {0}")]
    NotCommitted(String),
    /// The database could not be reached (no connection, or it broke).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error(
        "unsupported database URL scheme `{0}`: use sqlite:PATH or postgres://USER@HOST/DATABASE"
    )]
    UnsupportedUrl(String),
}

pub type DbResult<T> = Result<T, DbError>;

impl DbError {
    /// Whether the database could not be reached, rather than refused the
    /// statement: no connection in time, or a connection that broke. A
    /// request that meets it may succeed once the database is back (503).
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unavailable(_) => true,
            DbError::Sqlx(error) => matches!(
                error,
                sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            ),
            _ => false,
        }
    }
}
