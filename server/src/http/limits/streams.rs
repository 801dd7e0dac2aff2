//! The caps on live streams open on this node: per token, and per store
//! (whatever its tokens), so that one member cannot hold the node's
//! streams. Refused with 429, to try again within two pings (when a dead
//! connection has been found).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{refused, Limit};
use crate::http::ApiError;

/// The caps, and the streams open under them.
pub(super) struct StreamCaps {
    per_token: u32,
    per_store: u32,
    open: Arc<Mutex<OpenStreams>>,
}

/// The streams open on this node, by token and by store.
#[derive(Debug, Default)]
struct OpenStreams {
    by_token: HashMap<i64, u32>,
    by_store: HashMap<i64, u32>,
}

impl StreamCaps {
    pub(super) fn new(per_token: u32, per_store: u32) -> StreamCaps {
        StreamCaps {
            per_token,
            per_store,
            open: Arc::default(),
        }
    }

    /// Counts one more stream of `token_id` (and of its store), if neither
    /// holds its cap and then `admit` lets it open; all under one lock, so
    /// that two streams opening at once cannot both take the last place.
    pub(super) fn open(
        &self,
        token_id: i64,
        store_id: Option<i64>,
        ping_interval: Duration,
        admit: impl FnOnce() -> Result<(), ApiError>,
    ) -> Result<StreamGuard, ApiError> {
        let mut open = self.open.lock();
        // A dead connection is found within two pings.
        if open.by_token.get(&token_id).copied().unwrap_or(0) >= self.per_token {
            return Err(refused(Limit::StreamsPerToken, ping_interval * 2));
        }
        if let Some(store_id) = store_id {
            if open.by_store.get(&store_id).copied().unwrap_or(0) >= self.per_store {
                return Err(refused(Limit::StreamsPerStore, ping_interval * 2));
            }
        }
        admit()?;
        *open.by_token.entry(token_id).or_insert(0) += 1;
        if let Some(store_id) = store_id {
            *open.by_store.entry(store_id).or_insert(0) += 1;
        }
        Ok(StreamGuard {
            token_id,
            store_id,
            open_streams: self.open.clone(),
        })
    }
}

/// Counts one open stream of a token (and of its store) until dropped.
#[derive(Debug)]
pub struct StreamGuard {
    token_id: i64,
    store_id: Option<i64>,
    open_streams: Arc<Mutex<OpenStreams>>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut open = self.open_streams.lock();
        let open = &mut *open;
        count_down(&mut open.by_token, self.token_id);
        if let Some(store_id) = self.store_id {
            count_down(&mut open.by_store, store_id);
        }
    }
}

fn count_down(counts: &mut HashMap<i64, u32>, key: i64) {
    if let Some(count) = counts.get_mut(&key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::retry_after;
    use super::*;

    #[test]
    fn a_store_holds_at_most_its_streams_whatever_its_tokens() {
        let caps = StreamCaps::new(2, 3);
        let ping = Duration::from_secs(30);
        let open = |token, store| caps.open(token, store, ping, || Ok(()));
        // Store 1's tokens 10, 11 and 12: three streams in all.
        let a = open(10, Some(1)).expect("1");
        let _b = open(10, Some(1)).expect("2");
        let _c = open(11, Some(1)).expect("3");
        let refused = open(12, Some(1)).expect_err("a 4th");
        assert_eq!(retry_after(refused), ping * 2);
        // Another store, and staff, are not affected.
        let _other = open(20, Some(2)).expect("store 2");
        let _staff = open(30, None).expect("staff");
        let _staff2 = open(30, None).expect("staff");
        drop(a);
        let _d = open(12, Some(1)).expect("room again");
    }

    #[test]
    fn a_stream_refused_by_admit_takes_no_place() {
        let caps = StreamCaps::new(1, 1);
        let ping = Duration::from_secs(30);
        let no = caps.open(1, Some(1), ping, || {
            Err(refused(Limit::StreamConnectsPerToken, ping))
        });
        assert!(no.is_err());
        let _yes = caps.open(1, Some(1), ping, || Ok(())).expect("room");
        assert!(caps.open(1, Some(1), ping, || Ok(())).is_err());
    }
}
