//! The live stream: delivery by radius with stores at real distances,
//! resume with `since` without gap or duplicate, slow readers, shutdown.

use std::time::Duration;

use p4p_protocol::Role;
use p4p_tests::places::*;
use p4p_tests::*;
use serde_json::{json, Value};

/// Stores around Manhattan, each opened on the stream after its hello.
struct Neighbourhood {
    server: TestServer,
    staff: String,
    author: Member,
    newark: Member,
    philadelphia: Member,
    boston: Member,
}

async fn neighbourhood() -> Neighbourhood {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    // The author looks only 1 km around itself.
    let author = server.member(&staff, "Midtown Gems", MANHATTAN, 1.0).await;
    // 14 km from Manhattan, looking 1 km: inside a 25 km alert's reach.
    let newark = server.member(&staff, "Newark Gold", NEWARK, 1.0).await;
    // 130 km away, outside the reach, but looking 140 km around itself.
    let philadelphia = server
        .member(&staff, "Philly Diamonds", PHILADELPHIA, 140.0)
        .await;
    // 306 km away, looking 100 km: out of both.
    let boston = server
        .member(&staff, "Boston Jewelers", BOSTON, 100.0)
        .await;
    Neighbourhood {
        server,
        staff,
        author,
        newark,
        philadelphia,
        boston,
    }
}

async fn open(server: &TestServer, member: &Member) -> Stream {
    let mut stream = server.stream(&member.token, None).await;
    let hello = stream.next().await;
    assert_eq!(hello.hello().store_id, Some(member.id));
    stream
}

fn distance(frame: &Received) -> f64 {
    frame
        .distance_km()
        .unwrap_or_else(|| panic!("no distance_km in {frame}"))
}

#[tokio::test]
async fn an_alert_reaches_exactly_the_stores_the_delivery_rule_names() {
    let n = neighbourhood().await;
    let mut author = open(&n.server, &n.author).await;
    let mut newark = open(&n.server, &n.newark).await;
    let mut philadelphia = open(&n.server, &n.philadelphia).await;
    let mut boston = open(&n.server, &n.boston).await;
    let mut staff = n.server.stream(&n.staff, None).await;
    assert_eq!(staff.next().await.hello().role, Role::Moderator);

    let posted = n
        .server
        .api(Some(&n.author.token))
        .post_alert(&casing_at("Two men casing showcases", MANHATTAN, 25.0))
        .await;

    let to_newark = newark.next().await;
    assert_eq!(to_newark["type"], "alert");
    assert_eq!(to_newark["alert"], posted, "the whole alert, as posted");
    assert!((distance(&to_newark) - 14.1).abs() < 0.5, "{to_newark}");
    let to_philadelphia = philadelphia.next().await;
    assert!(
        (distance(&to_philadelphia) - 129.6).abs() < 1.0,
        "{to_philadelphia}"
    );
    let to_author = author.next().await;
    assert_eq!(distance(&to_author), 0.0);
    let to_staff = staff.next().await;
    assert_eq!(to_staff["alert"]["id"], posted["id"]);
    assert!(to_staff.json.get("distance_km").is_none());
    let seq = to_newark.seq();
    for frame in [&to_philadelphia, &to_author, &to_staff] {
        assert_eq!(frame.seq(), seq, "one seq for one event");
    }

    // Boston gets nothing: its first frame is the next alert near it.
    let near_boston = n
        .server
        .api(Some(&n.boston.token))
        .post_alert(&casing_at("Van circling the block", BOSTON, 5.0))
        .await;
    let to_boston = boston.next().await;
    assert_eq!(to_boston["alert"]["id"], near_boston["id"], "{to_boston}");
    assert!(to_boston.seq() > seq);
    newark.assert_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_store_that_was_away_resumes_in_order_without_gap_or_duplicate() {
    let n = neighbourhood().await;
    let author = n.server.api(Some(&n.author.token));
    let mut newark = open(&n.server, &n.newark).await;
    let first = author
        .post_alert(&casing_at("first", MANHATTAN, 25.0))
        .await;
    let frame = newark.next().await;
    assert_eq!(frame["alert"]["id"], first["id"]);
    let last_seen = frame.seq();
    newark.close().await;

    // While Newark is away: three for it, two that are not.
    let mut owed = Vec::new();
    for i in 0..3 {
        owed.push(
            author
                .post_alert(&casing_at(&format!("missed {i}"), MANHATTAN, 25.0))
                .await["id"]
                .clone(),
        );
        author.post_alert(&casing_at("far away", BOSTON, 5.0)).await;
    }
    let mut newark = n.server.stream(&n.newark.token, Some(last_seen)).await;
    let hello = newark.next().await;
    assert!(hello_head(&hello) > last_seen);
    let replayed = newark.take(3).await;
    let ids: Vec<Value> = replayed.iter().map(|f| f["alert"]["id"].clone()).collect();
    assert_eq!(ids, owed);
    let seqs = seqs(&replayed);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in seq order: {seqs:?}"
    );
    assert!(seqs[0] > last_seen);

    // Then live, with nothing repeated.
    let live = author
        .post_alert(&casing_at("live again", MANHATTAN, 25.0))
        .await;
    let frame = newark.next().await;
    assert_eq!(frame["alert"]["id"], live["id"]);
    assert!(Some(frame.seq()) > seqs.last().copied());
    newark.assert_quiet(Duration::from_millis(300)).await;

    // Replaying everything gives the same frames again, in the same order.
    let mut again = n.server.stream(&n.newark.token, Some(0)).await;
    hello_head(&again.next().await);
    let all = again.take(5).await;
    assert_eq!(all[0]["alert"]["id"], first["id"]);
    assert_eq!(&all[1..4], &replayed[..]);
    assert_eq!(all[4], frame);
}

#[tokio::test]
async fn resuming_while_alerts_keep_coming_loses_and_repeats_nothing() {
    let server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let poster = server.member(&staff, "Poster", MANHATTAN, 25.0).await;
    let listener = server.member(&staff, "Listener", BROOKLYN, 50.0).await;
    let api = server.api(Some(&poster.token));
    for i in 0..20 {
        api.post_alert(&casing_at(&format!("before {i}"), MANHATTAN, 25.0))
            .await;
    }
    // Posting goes on while the listener resumes from 0.
    let posting = {
        let api = server.api(Some(&poster.token));
        tokio::spawn(async move {
            for i in 0..40 {
                api.post_alert(&casing_at(&format!("during {i}"), MANHATTAN, 25.0))
                    .await;
            }
        })
    };
    let mut stream = server.stream(&listener.token, Some(0)).await;
    hello_head(&stream.next().await);
    let frames = stream.take(60).await;
    posting.await.expect("poster");
    let seqs = seqs(&frames);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {seqs:?}"
    );
    let expected: Vec<i64> = (1..=60).collect();
    assert_eq!(seqs, expected, "every event once");
    stream.assert_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn since_beyond_the_head_is_refused() {
    let (server, _, store) = TestServer::with_store().await;
    assert_eq!(
        server.try_stream(&store.token, Some(10)).await.err(),
        Some(409)
    );
    assert_eq!(
        server.try_stream(&store.token, Some(-1)).await.err(),
        Some(422)
    );
    assert!(server.try_stream(&store.token, Some(0)).await.is_ok());
}

#[tokio::test]
async fn a_browser_may_pass_the_token_in_the_query() {
    let (server, _, store) = TestServer::with_store().await;
    let mut stream = server
        .stream_with_query_token(&store.token)
        .await
        .expect("stream");
    assert_eq!(stream.next().await.hello().store_id, Some(store.id));
    assert!(
        !server.logs().contains(&store.token),
        "the token is never logged"
    );
}

#[tokio::test]
async fn a_client_too_slow_for_its_queue_is_closed_with_4008_and_resumes() {
    let server = TestServer::start_with(&["--stream-queue", "4"]).await;
    let staff = server.staff_token("moderator");
    let poster = server.member(&staff, "Poster", MANHATTAN, 25.0).await;
    let reader = server.member(&staff, "Reader", BROOKLYN, 25.0).await;
    let mut slow = server.tiny_window_stream(&reader.token).await;
    let head = hello_head(&slow.next().await);
    // 8 MB or more in all, while the slow client reads nothing.
    let api = server.api(Some(&poster.token));
    const BURST: usize = 250;
    for i in 0..BURST {
        api.post_alert(&largest_alert(&format!("burst {i}"), MANHATTAN))
            .await;
    }
    let mut seen = Vec::new();
    let code = loop {
        match slow.next_within(PATIENCE).await {
            Ok(Some(frame)) => seen.push(frame.seq()),
            Ok(None) => panic!("neither all frames nor a close"),
            Err(Ended::Closed(code)) => break code,
            Err(Ended::Dropped) => break None,
        }
    };
    assert_eq!(code, Some(4008), "received {} frames first", seen.len());
    let last = seen.last().copied().unwrap_or(head);
    let mut resumed = server.stream(&reader.token, Some(last)).await;
    hello_head(&resumed.next().await);
    let rest = resumed.take(BURST - seen.len()).await;
    let mut all = seen;
    all.extend(rest.iter().map(Received::seq));
    let expected: Vec<i64> = (head + 1..=head + BURST as i64).collect();
    assert_eq!(all, expected, "nothing lost, nothing twice");
}

#[tokio::test]
async fn shutdown_closes_streams_with_1001() {
    let mut server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let store = server
        .member(&staff, "Main Street Jewelers", MANHATTAN, 25.0)
        .await;
    let mut stream = server.stream(&store.token, None).await;
    hello_head(&stream.next().await);
    let status = server.stop("-TERM").await;
    assert!(status.success(), "{status:?}");
    assert_eq!(stream.closed().await, Some(1001));
}

#[tokio::test]
async fn suspension_during_a_long_replay_closes_the_stream_with_4001_at_once() {
    let (server, staff, poster) = TestServer::with_store().await;
    let reader = server.member(&staff, "Reader", BROOKLYN, 25.0).await;
    let api = server.api(Some(&poster.token));
    const HISTORY: usize = 250;
    for i in 0..HISTORY {
        api.post_alert(&largest_alert(&format!("old {i}"), MANHATTAN))
            .await;
    }
    // Replay from 0 into a client that takes a few KiB at a time.
    let mut stream = server.tiny_window_stream_since(&reader.token, 0).await;
    hello_head(&stream.next().await);
    stream.next().await;
    server
        .api(Some(&staff))
        .post(
            &format!("/v1/stores/{}/suspend", reader.id),
            &json!({ "reason": "abuse" }),
        )
        .await;
    let mut received = 1;
    let code = loop {
        match stream.next_within(PATIENCE).await {
            Ok(Some(_)) => received += 1,
            Ok(None) => panic!("the stream was not closed"),
            Err(Ended::Closed(code)) => break code,
            Err(Ended::Dropped) => break None,
        }
    };
    assert_eq!(code, Some(4001));
    assert!(
        received < HISTORY,
        "closed before the whole history went out ({received} frames)"
    );
}

#[test]
fn the_server_refuses_settings_that_cannot_work() {
    for args in [
        ["--stream-queue", "0"],
        ["--ping-interval-secs", "0"],
        ["--ping-interval-secs", "99999999999"],
    ] {
        let output = std::process::Command::new(server_binary())
            .args(args)
            .args(["--bind", "127.0.0.1:0", "--database-url", "sqlite::memory:"])
            .output()
            .expect("run p4p-server");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(args[0]), "{args:?}: {stderr}");
    }
}
