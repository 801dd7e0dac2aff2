//! What crosses nodes on PostgreSQL: `LISTEN`/`NOTIFY`.
//!
//! Every event-writing transaction notifies `p4p_events` with its `seq`
//! (delivered at commit, so a rolled-back write notifies no one); each node
//! then reads the events after its head from the database itself, so a
//! notification of any size or a lost one costs nothing but a read.
//! Suspensions, revocations and moves are announced on `p4p_control`, so
//! that every node closes or re-indexes its own streams.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::mpsc;

pub const EVENTS_CHANNEL: &str = "p4p_events";
pub const CONTROL_CHANNEL: &str = "p4p_control";

/// How long the LISTEN connection may be quiet before it is checked.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// How long one attempt to connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection must hold before the reconnect backoff resets.
const STABLE: Duration = Duration::from_secs(10);

/// A change one node tells the others about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announcement {
    StoreSuspended(i64),
    TokenRevoked(i64),
    StoreMoved(i64),
}

impl Announcement {
    pub fn payload(self) -> String {
        match self {
            Announcement::StoreSuspended(id) => format!("store_suspended:{id}"),
            Announcement::TokenRevoked(id) => format!("token_revoked:{id}"),
            Announcement::StoreMoved(id) => format!("store_moved:{id}"),
        }
    }

    pub fn parse(payload: &str) -> Option<Announcement> {
        let (what, id) = payload.split_once(':')?;
        let id = id.parse().ok()?;
        match what {
            "store_suspended" => Some(Announcement::StoreSuspended(id)),
            "token_revoked" => Some(Announcement::TokenRevoked(id)),
            "store_moved" => Some(Announcement::StoreMoved(id)),
            _ => None,
        }
    }
}

/// What the listener hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// Events up to this seq were committed (on some node).
    Committed(i64),
    Announced(Announcement),
    /// Listening again after a start or a lost connection: whatever was
    /// committed meanwhile must be read.
    Listening,
    /// The connection is lost, or could not be made: one database error
    /// each, for the follower to count. Notifications may be missed until
    /// `Listening`.
    Lost,
}

/// The URL to hear the other nodes on: a PostgreSQL database is shared by
/// several nodes; a SQLite file by none.
pub fn url_of(database_url: &str) -> Option<String> {
    (super::Dialect::of_url(database_url) == Some(super::Dialect::Postgres))
        .then(|| database_url.to_owned())
}

/// Listens on both channels for as long as the receiver lives,
/// reconnecting with backoff (0.1 s doubling to 5 s).
pub fn listen(url: String) -> mpsc::Receiver<Heard> {
    let (heard, receiver) = mpsc::channel(1024);
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match connect(&url).await {
                Ok(mut listener) => {
                    if heard.send(Heard::Listening).await.is_err() {
                        return;
                    }
                    let since = tokio::time::Instant::now();
                    let why = relay(&mut listener, &heard).await;
                    let Some(why) = why else {
                        return;
                    };
                    tracing::warn!(reason = %why, "lost the LISTEN connection; reconnecting");
                    // Only a connection that held for a while resets the backoff.
                    if since.elapsed() > STABLE {
                        delay = Duration::from_millis(100);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot LISTEN; retrying");
                }
            }
            if heard.send(Heard::Lost).await.is_err() {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    });
    receiver
}

async fn connect(url: &str) -> Result<PgListener, sqlx::Error> {
    // A pool of one, as `PgListener::connect` makes, but that gives up on
    // an unreachable database after a few seconds instead of thirty.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect(url)
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    // A lost connection ends `try_recv` at once (`Ok(None)`), so that the
    // node knows it may be missing notifications and says so (/readyz),
    // rather than reconnecting silently inside it for as long as the
    // database is away.
    listener.eager_reconnect(false);
    listener
        .listen_all([EVENTS_CHANNEL, CONTROL_CHANNEL])
        .await?;
    Ok(listener)
}

/// Passes notifications on until the connection is lost (the reason) or
/// nobody listens any more (`None`).
async fn relay(listener: &mut PgListener, heard: &mpsc::Sender<Heard>) -> Option<String> {
    loop {
        let notification = match tokio::time::timeout(HEARTBEAT, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => notification,
            Ok(Ok(None)) => return Some("connection closed".to_owned()),
            Ok(Err(error)) => return Some(error.to_string()),
            Err(_) => {
                // Quiet for a while: make sure the connection is still there
                // (a dropped NAT entry does not close a socket).
                if let Err(error) = sqlx::query("SELECT 1").execute(&mut *listener).await {
                    return Some(format!("heartbeat failed: {error}"));
                }
                continue;
            }
        };
        let payload = notification.payload();
        let message = match notification.channel() {
            EVENTS_CHANNEL => payload.parse().ok().map(Heard::Committed),
            _ => Announcement::parse(payload).map(Heard::Announced),
        };
        match message {
            Some(message) => {
                if heard.send(message).await.is_err() {
                    return None;
                }
            }
            None => tracing::warn!(payload, "unreadable notification ignored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip() {
        for announcement in [
            Announcement::StoreSuspended(7),
            Announcement::TokenRevoked(3),
            Announcement::StoreMoved(12),
        ] {
            assert_eq!(
                Announcement::parse(&announcement.payload()),
                Some(announcement)
            );
        }
        assert_eq!(Announcement::parse("nonsense"), None);
        assert_eq!(Announcement::parse("store_moved:x"), None);
    }
}
