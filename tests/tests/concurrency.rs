//! Many stores posting at once: new alerts are committed in groups, and
//! every one is still answered once, with its own id and seq, and streamed
//! live and on replay in seq order with no gap.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use p4p_protocol::Frame;
use p4p_tests::places::*;
use p4p_tests::*;
use serde_json::Value;

const STORES: usize = 4;
const POSTS_PER_STORE: usize = 15;

#[tokio::test]
async fn concurrent_posts_are_each_committed_once_and_streamed_in_seq_order() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let mut stores = Vec::new();
    for i in 0..STORES {
        stores.push(
            server
                .member(&staff, &format!("Store {i}"), MANHATTAN, 25.0)
                .await,
        );
    }
    let mut live = server.stream(&staff, None).await;
    live.next().await; // hello

    let server = &server;
    let posts = stores.iter().flat_map(|store| {
        (0..POSTS_PER_STORE).map(move |n| async move {
            server
                .api(Some(&store.token))
                .post_alert(&casing_at(&format!("post {n}"), MANHATTAN, 5.0))
                .await
        })
    });
    let posted: Vec<Value> = join_all(posts).await;
    let ids: BTreeSet<i64> = posted.iter().map(id_of).collect();
    assert_eq!(
        ids.len(),
        STORES * POSTS_PER_STORE,
        "every post has its own id"
    );

    let frames = live.take(STORES * POSTS_PER_STORE).await;
    assert_seq_order_and_ids(&frames, &ids);
    let replayed = server
        .stream(&staff, Some(0))
        .await
        .take(1 + ids.len())
        .await;
    assert_seq_order_and_ids(&replayed[1..], &ids);
    assert_eq!(
        frames,
        replayed[1..],
        "replay carries the same frames as the live stream"
    );
}

fn assert_seq_order_and_ids(frames: &[Received], ids: &BTreeSet<i64>) {
    let seqs = seqs(frames);
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive seqs, in order: {seqs:?}"
    );
    let streamed: BTreeSet<i64> = frames
        .iter()
        .map(|f| {
            assert!(matches!(f.frame, Frame::Alert(_)), "{f}");
            f.alert_id()
        })
        .collect();
    assert_eq!(&streamed, ids, "every posted alert streamed once");
}
