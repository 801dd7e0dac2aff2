//! The group-commit writer: new alerts queue for one task, which commits
//! every alert waiting in one transaction and answers each poster after
//! the commit that holds its alert.

use p4p_protocol::{Alert, AlertStatus, StoreRef};
use sqlx::{AnyConnection, AnyPool};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::events::{append_events, NewEvent};
use super::idempotency::{remember, remembered_object};
use super::{to_json, unix, Dialect};
use crate::db::{Committed, DbError, DbResult, IdempotencyKey, Posted};
use crate::domain::alert::ValidAlert;
use crate::domain::moderation;

/// How many new alerts may wait for the writer before posters wait to queue.
pub(super) const POST_QUEUE: usize = 1024;
/// The most new alerts one transaction commits.
const MAX_POSTS_PER_COMMIT: usize = 128;

/// A new alert waiting for its commit; its poster is answered after it.
pub(super) struct QueuedPost {
    pub(super) author: StoreRef,
    pub(super) alert: ValidAlert,
    pub(super) status: AlertStatus,
    pub(super) status_reason: Option<String>,
    pub(super) now: OffsetDateTime,
    pub(super) idempotency: Option<IdempotencyKey>,
    /// Answered after the commit.
    pub(super) done: oneshot::Sender<DbResult<Committed<Posted>>>,
}

/// Group commit: writes every new alert waiting in the queue in one
/// transaction, so that one fsync (SQLite's, or PostgreSQL's while it holds
/// the seq counter's row) serves them all. Each poster is answered only
/// after the commit that holds its alert, so a 201 still means durable;
/// their events take consecutive seqs in queue order.
pub(super) async fn commit_posts(
    writer: AnyPool,
    dialect: Dialect,
    mut queued: mpsc::Receiver<QueuedPost>,
) {
    let mut group = Vec::with_capacity(MAX_POSTS_PER_COMMIT);
    while queued.recv_many(&mut group, MAX_POSTS_PER_COMMIT).await > 0 {
        let posts = std::mem::take(&mut group);
        let started = std::time::Instant::now();
        match write_posts(&writer, dialect, &posts).await {
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
                    let written = write_posts(&writer, dialect, std::slice::from_ref(&post)).await;
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
    dialect: Dialect,
    posts: &[QueuedPost],
) -> Result<Vec<Committed<Posted>>, GroupFailed> {
    let mut tx = writer
        .begin()
        .await
        .map_err(|e| GroupFailed::Before(e.into()))?;
    let written = insert_alerts(&mut tx, dialect, posts)
        .await
        .map_err(GroupFailed::Before)?;
    tx.commit()
        .await
        .map_err(|e| GroupFailed::Commit(e.into()))?;
    Ok(written)
}

/// Inserts new alerts and appends their events (`alert` when published,
/// `pending` when it waits), the counter row taken last. A post whose
/// idempotency key another request took meanwhile writes nothing.
async fn insert_alerts(
    tx: &mut AnyConnection,
    dialect: Dialect,
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
        .map(|alert| NewEvent::of(moderation::posted(alert.status), alert, alert))
        .collect::<DbResult<Vec<_>>>()?;
    // One event per post that wrote its alert, in order; none for a taken key.
    let mut events = append_events(tx, dialect, events, now).await?.into_iter();
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
    let published = status == AlertStatus::Published;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO alerts (store_id, kind, status, status_reason, title, description, occurred_at, lat, lon, \
         radius_km, suspects, vehicles, created_at, updated_at, published_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, CASE WHEN $15 THEN $16 END) RETURNING id",
    )
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
    Ok(alert.first_version(id, author.clone(), status, status_reason.clone(), now))
}
