//! Faults: a killed server, a client that stops reading, a client that
//! vanishes without closing, a database that goes away, and secrets at rest.
//! Each test prints one summary line with its figures (`--nocapture`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use p4p_tests::places::{BOSTON, BROOKLYN, MANHATTAN, NEWARK, PHILADELPHIA};
use p4p_tests::proxy::Proxy;
use p4p_tests::{
    casing_at, hello_head, id_of, largest_alert, on_postgres, seqs, Ended, Received, Stream,
    TestServer, PATIENCE,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Great-circle distance in km on the mean earth radius, as the server
/// measures it (haversine).
fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lat2) = (a.0.to_radians(), b.0.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.1 - a.1).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * 6_371.008_8 * h.sqrt().asin()
}

/// An acknowledged alert: who posted it, where, how far it reaches.
#[derive(Debug, Clone, Copy)]
struct Posted {
    id: i64,
    author: i64,
    at: (f64, f64),
    radius_km: f64,
}

/// A listening store and what docs/API.md's rule owes it.
#[derive(Debug, Clone, Copy)]
struct Watcher {
    id: i64,
    at: (f64, f64),
    radius_km: f64,
}

impl Watcher {
    fn is_owed(&self, alert: &Posted) -> bool {
        let d = distance_km(self.at, alert.at);
        d <= alert.radius_km || d <= self.radius_km || alert.author == self.id
    }
}

/// Reads a stream until it ends, or until it processed `limit` alerts
/// (a listener that went away on its own); `(seq, alert id)` of each.
async fn read_until_dropped(mut stream: Stream, limit: usize) -> Vec<(i64, i64)> {
    let mut frames = Vec::new();
    while frames.len() < limit {
        match stream.next_within(Duration::from_secs(120)).await {
            Ok(Some(frame)) => frames.extend(frame.published()),
            Ok(None) => panic!("the stream neither delivered nor ended"),
            Err(_) => return frames,
        }
    }
    frames
}

/// Every alert id a moderator can list, paging to the end.
async fn listed_ids(server: &TestServer, staff: &str) -> HashSet<i64> {
    let api = server.api(Some(staff));
    let mut ids = HashSet::new();
    let mut path = "/v1/alerts?limit=500".to_owned();
    loop {
        let page = api.get(&path).await;
        assert_eq!(page.status, 200, "{page:?}");
        for alert in page.body["alerts"].as_array().expect("alerts") {
            ids.insert(id_of(alert));
        }
        match page.body["next_before_id"].as_i64() {
            Some(before) => path = format!("/v1/alerts?limit=500&before_id={before}"),
            None => return ids,
        }
    }
}

/// Four stores post continuously while three others listen; the server is
/// killed with SIGKILL mid-flight and restarted on the same database.
/// Every alert answered 201 is there, and every listener that resumes from
/// the last seq it processed gets everything owed to it, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_acknowledged_alert_and_listeners_resume_exactly() {
    let mut server = TestServer::start().await;
    let staff = server.staff_token("moderator");
    let mut posters = Vec::new();
    for (name, at) in [
        ("Manhattan", MANHATTAN),
        ("Newark", NEWARK),
        ("Brooklyn", BROOKLYN),
        ("Philadelphia", PHILADELPHIA),
    ] {
        posters.push((server.member(&staff, name, at, 25.0).await, at));
    }
    // Near and small, far and wide, wide around a poster; one reads until
    // the kill, two stop processing early (they lag, or went away).
    let mut watchers = Vec::new();
    for (name, at, radius_km, limit) in [
        ("Brooklyn watcher", BROOKLYN, 5.0, usize::MAX),
        ("Boston watcher", BOSTON, 50.0, 20),
        ("Philadelphia watcher", PHILADELPHIA, 150.0, 60),
    ] {
        let member = server.member(&staff, name, at, radius_km).await;
        let watcher = Watcher {
            id: member.id,
            at,
            radius_km,
        };
        watchers.push((member, watcher, limit));
    }
    let mut listening = Vec::new();
    let mut heads = Vec::new();
    for (member, _, limit) in &watchers {
        let mut stream = server.stream(&member.token, None).await;
        heads.push(hello_head(&stream.next().await));
        listening.push(tokio::spawn(read_until_dropped(stream, *limit)));
    }

    // Radii that reach: only the poster's own place, the region, or Boston too.
    const RADII: [f64; 3] = [0.5, 25.0, 400.0];
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let mut posting = Vec::new();
    for (member, at) in &posters {
        let api = server.api(Some(&member.token));
        let (author, at) = (member.id, *at);
        let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
        posting.push(tokio::spawn(async move {
            let (mut attempts, mut posted) = (0usize, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let radius_km = RADII[attempts % RADII.len()];
                attempts += 1;
                let body = casing_at(&format!("{author}/{attempts}"), at, radius_km);
                match api.try_post("/v1/alerts", &body).await {
                    Ok(reply) if reply.status == 201 => {
                        posted.push(Posted {
                            id: reply.i64("id"),
                            author,
                            at,
                            radius_km,
                        });
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(reply) => panic!("a post before the kill failed: {reply:?}"),
                    // The server is gone: this post may or may not have committed.
                    Err(_) => break,
                }
            }
            (attempts, posted)
        }));
    }
    while acknowledged.load(Ordering::Relaxed) < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = server.stop("-KILL").await;
    stop.store(true, Ordering::Relaxed);
    assert!(!status.success(), "killed: {status:?}");
    let (mut attempted, mut acked) = (0, Vec::new());
    for task in posting {
        let (attempts, posted) = task.await.expect("poster");
        attempted += attempts;
        acked.extend(posted);
    }
    let mut before_kill = Vec::new();
    for task in listening {
        before_kill.push(task.await.expect("listener"));
    }

    server
        .launch("127.0.0.1:0", &["--probation-alerts", "0"])
        .await;
    let api = server.api(Some(&staff));
    for alert in &acked {
        let reply = api.get(&format!("/v1/alerts/{}", alert.id)).await;
        assert_eq!(reply.status, 200, "acknowledged alert {} lost", alert.id);
        assert_eq!(reply.body["store"]["id"], alert.author);
    }
    let found = listed_ids(&server, &staff).await;
    for alert in &acked {
        assert!(found.contains(&alert.id), "alert {} not listed", alert.id);
    }

    // Each listener resumes from the last seq it processed. A marker alert
    // at its own place, posted after the resume, ends what it must read.
    let marker_poster = server.api(Some(&posters[0].0.token));
    let mut delivered_on_resume = 0;
    let mut delivered_in_all = 0;
    let mut markers = HashSet::new();
    for (((member, watcher, _), head), seen) in watchers.iter().zip(&heads).zip(&before_kill) {
        let since = seen.last().map_or(*head, |(seq, _)| *seq);
        let mut stream = server.stream(&member.token, Some(since)).await;
        hello_head(&stream.next().await);
        let marker = id_of(
            &marker_poster
                .post_alert(&casing_at("marker", watcher.at, 0.5))
                .await,
        );
        markers.insert(marker);
        let mut resumed = Vec::new();
        loop {
            let Some((seq, id)) = stream.next().await.published() else {
                continue;
            };
            if id == marker {
                break;
            }
            if markers.contains(&id) {
                // Another listener's marker, posted after the restart.
                continue;
            }
            resumed.push((seq, id));
        }
        let all: Vec<(i64, i64)> = seen.iter().chain(&resumed).copied().collect();
        assert!(
            all.windows(2).all(|w| w[0].0 < w[1].0),
            "store {}: seqs in order, none twice",
            member.id
        );
        let mut times: HashMap<i64, usize> = HashMap::new();
        for (_, id) in &all {
            *times.entry(*id).or_default() += 1;
            assert!(
                found.contains(id),
                "store {} got unknown alert {id}",
                member.id
            );
        }
        for alert in acked.iter().filter(|a| watcher.is_owed(a)) {
            assert_eq!(
                times.get(&alert.id),
                Some(&1),
                "store {} owed alert {} once",
                member.id,
                alert.id
            );
        }
        let by_id: BTreeMap<i64, &Posted> = acked.iter().map(|a| (a.id, a)).collect();
        for (_, id) in &all {
            if let Some(alert) = by_id.get(id) {
                assert!(
                    watcher.is_owed(alert),
                    "store {} got {id}, not owed",
                    member.id
                );
            }
        }
        delivered_on_resume += resumed.len();
        delivered_in_all += all.len();
    }
    println!(
        "crash ({}): posted {attempted}, acknowledged {}, found after restart {} (every acknowledged one by id and in the listing), resumed {} listeners, delivered {delivered_on_resume} on resume and {delivered_in_all} in all, in seq order, once each",
        if on_postgres() { "postgres" } else { "sqlite" },
        acked.len(),
        found.len(),
        watchers.len(),
    );
}

/// A client that stops reading delays no one: the others receive every
/// alert while it is open and stalled; it is closed with 4008 once its
/// bounded queue fills, and resumes with `since`, losing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_delays_no_one_and_resumes_after_4008() {
    let server = TestServer::start_with(&[
        "--stream-queue",
        "8",
        // The server gives up on a write after one interval: not in this test.
        "--ping-interval-secs",
        "600",
    ])
    .await;
    let staff = server.staff_token("moderator");
    let poster = server.member(&staff, "Poster", MANHATTAN, 25.0).await;
    let stalled_store = server.member(&staff, "Stalled", BROOKLYN, 25.0).await;
    let mut stalled = server.tiny_window_stream(&stalled_store.token).await;
    let head = hello_head(&stalled.next().await);
    let mut others = Vec::new();
    for (name, at) in [
        ("Newark", NEWARK),
        ("Brooklyn", BROOKLYN),
        ("Uptown", MANHATTAN),
    ] {
        let member = server.member(&staff, name, at, 25.0).await;
        let mut stream = server.stream(&member.token, None).await;
        hello_head(&stream.next().await);
        others.push(stream);
    }
    let api = server.api(Some(&poster.token));
    // ~9 MB of large alerts, posted one by one; each reaches every other
    // listener before the next is posted, while the stalled one reads
    // nothing (its socket takes in 4 KiB; the server's fills, then its
    // queue of 8).
    const FLOOD: usize = 250;
    let mut posted = Vec::new();
    for i in 0..FLOOD {
        let alert = api
            .post_alert(&largest_alert(&format!("flood {i}"), MANHATTAN))
            .await;
        let id = id_of(&alert);
        posted.push(id);
        for other in &mut others {
            let frame = other.next().await;
            assert_eq!(frame.alert_id(), id, "{frame}");
        }
    }
    // Only now does the stalled client read: what was buffered, then the
    // server's close frame 4008. Its connection was open all along (the
    // server writes no frame on a closed one), and it was cut off.
    let mut seen = Vec::new();
    let code = loop {
        match stalled.next_within(PATIENCE).await {
            Ok(Some(frame)) => seen.push(frame.seq()),
            Ok(None) => panic!("neither frames nor a close"),
            Err(Ended::Closed(code)) => break code,
            Err(Ended::Dropped) => break None,
        }
    };
    assert_eq!(code, Some(4008), "after {} frames", seen.len());
    assert!(seen.len() < FLOOD, "the stalled client got everything");
    let last = seen.last().copied().unwrap_or(head);
    let mut resumed = server.stream(&stalled_store.token, Some(last)).await;
    hello_head(&resumed.next().await);
    let rest = resumed.take(posted.len() - seen.len()).await;
    let mut all = seen.clone();
    all.extend(seqs(&rest));
    let expected: Vec<i64> = (head + 1..=head + posted.len() as i64).collect();
    assert_eq!(all, expected, "nothing lost, nothing twice");
    let ids: Vec<i64> = rest.iter().map(Received::alert_id).collect();
    assert_eq!(&posted[seen.len()..], &ids[..]);
    resumed.assert_quiet(Duration::from_millis(300)).await;
    println!(
        "slow consumer: {FLOOD} alerts of ~35 KB posted; 3 other listeners received each before the next was posted, all while the stalled client's connection was open and unread; the stalled one then read {} frames and the close 4008 (queue 8), and its resume delivered the other {} in order, none lost or twice",
        seen.len(),
        rest.len(),
    );
}

/// The payload of the first WebSocket text frame in `bytes` (after the
/// handshake's response), unmasked as a server sends it.
fn first_text_frame(bytes: &[u8]) -> Option<Received> {
    let start = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let frame = &bytes[start..];
    if frame.len() < 2 || frame[0] != 0x81 {
        return None;
    }
    let (length, offset) = match frame[1] & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes([*frame.get(2)?, *frame.get(3)?])),
            4,
        ),
        127 => return None,
        n => (usize::from(n), 2),
    };
    let text = std::str::from_utf8(frame.get(offset..offset + length)?).ok()?;
    Some(Received::parse(text))
}

/// A client that completes the handshake and then goes silent (reads
/// nothing, answers no ping) is found by the ping timeout and dropped;
/// the store then resumes with `since` and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_client_is_dropped_by_ping_timeout_and_resumes() {
    let server = TestServer::start_with(&["--ping-interval-secs", "1"]).await;
    let staff = server.staff_token("moderator");
    let poster = server.member(&staff, "Poster", MANHATTAN, 25.0).await;
    let store = server.member(&staff, "Silent", BROOKLYN, 25.0).await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let handshake = format!(
        "GET /v1/stream HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {}\r\n\r\n",
        store.token
    );
    socket
        .write_all(handshake.as_bytes())
        .await
        .expect("handshake");
    // Read the 101 and the hello, then never read or write again.
    let mut received = Vec::new();
    let hello = loop {
        let mut buffer = [0u8; 4096];
        let n = tokio::time::timeout(PATIENCE, socket.read(&mut buffer))
            .await
            .expect("no answer to the handshake")
            .expect("handshake answer");
        assert!(n > 0, "closed during the handshake");
        received.extend_from_slice(&buffer[..n]);
        if let Some(hello) = first_text_frame(&received) {
            break hello;
        }
    };
    assert!(received.starts_with(b"HTTP/1.1 101"), "{received:?}");
    let head = hello_head(&hello);
    let api = server.api(Some(&poster.token));
    const WHILE_SILENT: usize = 10;
    const AFTER: usize = 5;
    for i in 0..WHILE_SILENT {
        api.post_alert(&casing_at(&format!("while silent {i}"), MANHATTAN, 25.0))
            .await;
    }
    let mut found = false;
    for _ in 0..150 {
        if server.logs().contains("no answer to pings") {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(found, "the server never gave up on the silent client");
    // Only now read: whatever was sent, then the end of the connection.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(PATIENCE, socket.read_to_end(&mut rest))
        .await
        .expect("the server never closed the connection");
    assert!(
        read.is_ok()
            || matches!(read, Err(ref e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the socket reaches EOF or a reset: {read:?}"
    );
    for i in 0..AFTER {
        api.post_alert(&casing_at(&format!("after {i}"), MANHATTAN, 25.0))
            .await;
    }
    let mut resumed = server.stream(&store.token, Some(head)).await;
    hello_head(&resumed.next().await);
    let frames = resumed.take(WHILE_SILENT + AFTER).await;
    let expected: Vec<i64> = (head + 1..=head + (WHILE_SILENT + AFTER) as i64).collect();
    assert_eq!(seqs(&frames), expected);
    resumed.assert_quiet(Duration::from_millis(300)).await;
    println!(
        "half-open: a client silent after the handshake was dropped by the ping timeout (1 s interval; log \"no answer to pings\", socket at EOF after {} bytes in all); its resume delivered all {} alerts ({WHILE_SILENT} posted while it was silent, {AFTER} after) in order",
        received.len() + rest.len(),
        frames.len(),
    );
}

/// Polls until `check` holds, at most `PATIENCE`; whether it did.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE * 4;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// PostgreSQL goes away (a proxy between the server and it is cut): writes
/// answer 503 problem documents within a bounded time instead of hanging,
/// /readyz answers 503; once it is back, everything recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_recovers_by_itself() {
    let proxy = Proxy::to("127.0.0.1:5432");
    let server = TestServer::start_on_postgres_through(&proxy, &[]).await;
    let staff = server.staff_token("moderator");
    let poster = server.member(&staff, "Poster", MANHATTAN, 25.0).await;
    let reader = server.member(&staff, "Reader", BROOKLYN, 25.0).await;
    let api = server.api(Some(&poster.token));
    let mut stream = server.stream(&reader.token, None).await;
    hello_head(&stream.next().await);
    let before = api.post_alert(&casing_at("before", MANHATTAN, 25.0)).await;
    assert_eq!(stream.next().await["alert"]["id"], before["id"]);
    // The stream is read all along (answering pings) by a task of its own.
    let (frames_tx, mut frames_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(frame)) = stream.next_within(Duration::from_secs(600)).await {
            if frames_tx.send(frame).is_err() {
                return;
            }
        }
    });
    assert!(server.readyz_becomes(200).await);

    proxy.cut();
    // Every answer comes, and is a 503 problem document: bounded by the
    // deadline of each request, however long the pool waits.
    const TRIES: usize = 2;
    let mut refused = 0;
    let mut codes = HashSet::new();
    let mut slowest = Duration::ZERO;
    for i in 0..TRIES {
        let started = std::time::Instant::now();
        let posted = tokio::time::timeout(
            PATIENCE * 4,
            api.post(
                "/v1/alerts",
                &casing_at(&format!("during {i}"), MANHATTAN, 25.0),
            ),
        )
        .await
        .expect("POST /v1/alerts hung");
        assert_eq!(posted.status, 503, "{posted:?}");
        codes.insert(posted.body["code"].as_str().unwrap_or_default().to_owned());
        posted.problem(503, posted.body["code"].as_str().unwrap_or_default());
        let pledged = tokio::time::timeout(
            PATIENCE * 4,
            server.anonymous().post(
                "/v1/pledge",
                &p4p_tests::pledge_body(&format!("New {i}"), NEWARK, 25.0),
            ),
        )
        .await
        .expect("POST /v1/pledge hung");
        assert_eq!(pledged.status, 503, "{pledged:?}");
        codes.insert(pledged.body["code"].as_str().unwrap_or_default().to_owned());
        let ready = tokio::time::timeout(PATIENCE * 4, server.anonymous().get("/readyz"))
            .await
            .expect("/readyz hung");
        assert_eq!(ready.status, 503, "{ready:?}");
        refused += 3;
        // A figure, not a check: how long the three answers took.
        slowest = slowest.max(started.elapsed() / 3);
    }
    assert!(
        codes.is_subset(&HashSet::from([
            "database_unavailable".to_owned(),
            "timeout".to_owned()
        ])),
        "{codes:?}"
    );
    assert_eq!(server.anonymous().get("/healthz").await.status, 200);

    proxy.restore();
    assert!(
        eventually(|| async { server.anonymous().get("/readyz").await.status == 200 }).await,
        "/readyz never recovered"
    );
    let mut recovered = 0;
    assert!(
        eventually(|| {
            let body = casing_at(&format!("after {recovered}"), MANHATTAN, 25.0);
            recovered += 1;
            let api = &api;
            async move { api.post("/v1/alerts", &body).await.status == 201 }
        })
        .await,
        "posting never recovered"
    );
    // The stream delivers again: the first alert after the outage that
    // reached the database (no alert posted during it ever appears).
    let after = api
        .post_alert(&casing_at("after, checked", MANHATTAN, 25.0))
        .await;
    let mut frames = Vec::new();
    loop {
        let frame = tokio::time::timeout(PATIENCE, frames_rx.recv())
            .await
            .expect("the stream delivers again")
            .expect("the stream is open");
        let alert = frame.alert();
        assert!(!alert.title.starts_with("during"), "{frame}");
        let done = alert.id == id_of(&after);
        frames.push(frame);
        if done {
            break;
        }
    }
    assert!(
        server.logs().contains("lost the LISTEN connection"),
        "the LISTEN relay saw the outage and reconnected: {}",
        server.logs()
    );
    let pledged = server
        .anonymous()
        .post(
            "/v1/pledge",
            &p4p_tests::pledge_body("Newcomer", NEWARK, 25.0),
        )
        .await;
    assert_eq!(pledged.status, 201, "{pledged:?}");
    println!(
        "database outage (postgres through a proxy, cut then restored): {refused} requests during the outage (POST /v1/alerts, POST /v1/pledge, /readyz) all answered 503 ({codes:?}), none hung (about {:.1} s each on average in the slowest round); after the restore /readyz 200, posts 201 after {recovered} tries, the open stream delivered {} alerts again, no restart ({} connections through the proxy)",
        slowest.as_secs_f64(),
        frames.len(),
        proxy.connections(),
    );
}

/// Every byte the database holds, as text: the SQLite files, or every row
/// of every table of the PostgreSQL database.
fn database_text(server: &TestServer) -> (String, usize) {
    if let Some(database) = server.postgres_database() {
        let url = format!("{}/{database}", p4p_tests::postgres_admin_url());
        let psql = |sql: &str| {
            let output = std::process::Command::new("psql")
                .args([&url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql])
                .output()
                .expect("psql");
            assert!(output.status.success(), "{output:?}");
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        let tables =
            psql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'");
        let tables: Vec<&str> = tables.lines().collect();
        let mut text = String::new();
        for table in &tables {
            text.push_str(&psql(&format!("SELECT t::text FROM \"{table}\" t")));
        }
        (text, tables.len())
    } else {
        let path = server.sqlite_path().expect("sqlite");
        let mut text = String::new();
        let mut files = 0;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                text.push_str(&String::from_utf8_lossy(&bytes));
                files += 1;
            }
        }
        (text, files)
    }
}

/// Tokens (staff, store, device) and claim secrets are stored only as
/// hashes and never logged, after every kind of use of each, streams with
/// `?access_token=` included.
#[tokio::test]
async fn tokens_and_claim_secrets_are_stored_only_as_hashes_and_never_logged() {
    let server = TestServer::start().await;
    let admin = server.staff_token("admin");
    let moderator = server.staff_token("moderator");
    let (store_id, claim_secret) = server.pledge("Hashed", MANHATTAN, 25.0).await;
    let (_, pending_secret) = server.pledge("Still pending", BROOKLYN, 25.0).await;
    let staff = server.api(Some(&moderator));
    let claim = |secret: String| {
        let anonymous = server.anonymous();
        async move {
            anonymous
                .post(
                    &format!("/v1/pledge/{store_id}/claim"),
                    &json!({ "claim_secret": secret }),
                )
                .await
        }
    };
    assert_eq!(claim(claim_secret.clone()).await.status, 202);
    assert_eq!(
        staff
            .post(&format!("/v1/stores/{store_id}/approve"), &json!({}))
            .await
            .status,
        200
    );
    let claimed = claim(claim_secret.clone()).await;
    assert_eq!(claimed.status, 200, "{claimed:?}");
    let store_token = claimed.str("token").to_owned();
    let store = server.api(Some(&store_token));
    let device = store
        .post("/v1/me/tokens", &json!({ "label": "back office" }))
        .await;
    assert_eq!(device.status, 201, "{device:?}");
    let device_token = device.str("token").to_owned();
    let spare = store
        .post("/v1/me/tokens", &json!({ "label": "spare" }))
        .await;
    let spare_token = spare.str("token").to_owned();
    let admin_device = server
        .api(Some(&admin))
        .post("/v1/me/tokens", &json!({ "label": "laptop" }))
        .await;
    assert_eq!(admin_device.status, 201, "{admin_device:?}");
    let admin_device_token = admin_device.str("token").to_owned();

    // Use every token everywhere: HTTP and streams, header and query.
    let mut requests = 0;
    for token in [&store_token, &device_token, &spare_token] {
        let api = server.api(Some(token));
        let alert = api.post_alert(&casing_at("hashes", MANHATTAN, 25.0)).await;
        let id = id_of(&alert);
        for path in [
            "/v1/me".to_owned(),
            "/v1/me/tokens".to_owned(),
            "/v1/alerts".to_owned(),
            format!("/v1/alerts/{id}"),
        ] {
            assert_eq!(api.get(&path).await.status, 200, "{path}");
            requests += 1;
        }
        api.patch(&format!("/v1/alerts/{id}"), &json!({ "title": "edited" }))
            .await;
        api.flag(id, "test").await;
        requests += 3;
        let mut stream = server.stream_with_query_token(token).await.expect("stream");
        hello_head(&stream.next().await);
        let mut stream = server.stream(token, Some(0)).await;
        hello_head(&stream.next().await);
        requests += 2;
    }
    for token in [&admin, &moderator, &admin_device_token] {
        let api = server.api(Some(token));
        for path in [
            "/v1/me",
            "/v1/alerts",
            "/v1/moderation/queue",
            "/v1/audit",
            "/v1/stores?status=approved",
        ] {
            assert_eq!(api.get(path).await.status, 200, "{path}");
            requests += 1;
        }
        let mut stream = server.stream_with_query_token(token).await.expect("stream");
        hello_head(&stream.next().await);
        requests += 1;
    }
    // The writes that are left: the store's own area, an author's
    // retraction, a moderator's verification, suspension and reinstatement.
    let moved = store
        .patch(
            "/v1/me",
            &json!({ "radius_km": 30.0, "location": { "lat": 40.72, "lon": -74.0 } }),
        )
        .await;
    assert_eq!(moved.status, 202, "{moved:?}");
    let mine = store
        .post_alert(&casing_at("to retract", MANHATTAN, 25.0))
        .await;
    let verified = staff
        .post(&format!("/v1/alerts/{}/verify", mine["id"]), &json!({}))
        .await;
    assert_eq!(verified.status, 200, "{verified:?}");
    let retracted = store
        .post(
            &format!("/v1/alerts/{}/retract", mine["id"]),
            &json!({ "reason": "resolved" }),
        )
        .await;
    assert_eq!(retracted.status, 200, "{retracted:?}");
    let spare_id = spare.i64("id");
    let revoked = store.delete(&format!("/v1/me/tokens/{spare_id}")).await;
    assert!(revoked.status < 300, "{revoked:?}");
    let mut reinstated = None;
    for (action, body) in [
        ("suspend", json!({ "reason": "audit" })),
        ("reinstate", json!({})),
    ] {
        let reply = staff
            .post(&format!("/v1/stores/{store_id}/{action}"), &body)
            .await;
        assert_eq!(reply.status, 200, "{action}: {reply:?}");
        reinstated = Some(reply);
    }
    // Reinstatement hands out a new claim secret: claimed once.
    let reinstated_secret = reinstated
        .expect("reinstated")
        .str("claim_secret")
        .to_owned();
    let reclaimed = claim(reinstated_secret.clone()).await;
    assert_eq!(reclaimed.status, 200, "{reclaimed:?}");
    let reclaimed_token = reclaimed.str("token").to_owned();
    assert_eq!(
        server
            .api(Some(&reclaimed_token))
            .get("/v1/me")
            .await
            .status,
        200
    );
    assert_eq!(claim(reinstated_secret.clone()).await.status, 409);
    requests += 8;
    // Refused uses log nothing secret either: a revoked token, a wrong one,
    // a claim with the wrong secret, a claim repeated.
    assert_eq!(
        server.api(Some(&spare_token)).get("/v1/me").await.status,
        401
    );
    assert_eq!(
        server.stream_with_query_token(&spare_token).await.err(),
        Some(401)
    );
    let wrong = format!("{store_token}x");
    assert_eq!(server.api(Some(&wrong)).get("/v1/me").await.status, 401);
    let wrong_claim = claim(format!("{claim_secret}x")).await;
    assert!((400..500).contains(&wrong_claim.status), "{wrong_claim:?}");
    assert_eq!(
        claim(claim_secret.clone()).await.status,
        404,
        "replaced at reinstatement"
    );
    requests += 9;

    let secrets = [
        ("admin token", &admin),
        ("moderator token", &moderator),
        ("store token", &store_token),
        ("device token", &device_token),
        ("revoked token", &spare_token),
        ("admin device token", &admin_device_token),
        ("claim secret", &claim_secret),
        ("reinstatement claim secret", &reinstated_secret),
        ("token claimed after reinstatement", &reclaimed_token),
        ("pending claim secret", &pending_secret),
        ("wrong token", &wrong),
    ];
    let (stored, scanned) = database_text(&server);
    assert!(stored.contains("Hashed"), "the scan reads the data");
    let logs = server.logs();
    assert!(logs.contains("stream connected"), "the log has the run");
    for (what, secret) in secrets {
        assert!(
            !stored.contains(secret.as_str()),
            "{what} stored in plain text"
        );
        // The random part alone, in case a prefix was stripped.
        let random = secret.trim_start_matches("p4p_");
        assert!(!stored.contains(random), "{what} stored without its prefix");
        assert!(!logs.contains(random), "{what} logged");
    }
    println!(
        "secrets at rest ({}): {} tokens and 3 claim secrets, used in {requests} requests and streams (header and ?access_token=), appear nowhere in the database ({} {scanned} read, {} bytes of text) nor in {} bytes of server log",
        if on_postgres() { "postgres" } else { "sqlite" },
        secrets.len() - 4,
        if on_postgres() { "tables" } else { "files" },
        stored.len(),
        logs.len(),
    );
}
