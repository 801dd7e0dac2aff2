//! Floods and abuse: every rate limit answers 429 with `Retry-After` and
//! stores nothing; caps on streams and connections; oversized and too
//! frequent client messages; request timeouts; browser origins.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use p4p_tests::places::*;
use p4p_tests::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// The `Retry-After` of a 429, in seconds, asserting it is a sensible one.
fn retry_after(reply: &Reply, at_most: u64) -> u64 {
    let seconds: u64 = reply
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("429 without a whole-seconds Retry-After: {reply:?}"));
    assert!(
        (1..=at_most).contains(&seconds),
        "Retry-After {seconds} not in 1..={at_most}"
    );
    seconds
}

#[tokio::test]
async fn alerts_per_store_per_hour() {
    let server =
        TestServer::start_with(&["--rate-limits", "on", "--alerts-per-store-per-hour", "3"]).await;
    let staff = server.staff_token("moderator");
    let store = server.member(&staff, "Main Street", MANHATTAN, 25.0).await;
    let other = server.member(&staff, "Newark Gold", NEWARK, 25.0).await;
    let api = server.api(Some(&store.token));
    // An invalid alert is refused for what it is and takes nothing.
    api.post("/v1/alerts", &json!({"kind": "casing", "title": ""}))
        .await
        .problem(422, "invalid_input");
    for n in 0..3 {
        api.post_alert(&casing_at(&format!("casing {n}"), MANHATTAN, 25.0))
            .await;
    }
    let refused = api
        .post("/v1/alerts", &casing_at("one too many", MANHATTAN, 25.0))
        .await;
    let detail = refused.problem(429, "rate_limited");
    assert!(detail.contains("alerts"), "{detail}");
    // 3 an hour: the next one is 20 minutes away.
    let wait = retry_after(&refused, 3_600);
    assert!(wait > 60, "Retry-After {wait}");
    // Another store has its own allowance.
    server
        .api(Some(&other.token))
        .post_alert(&casing_at("Newark casing", NEWARK, 25.0))
        .await;
    // Nothing of the refused alert was stored.
    let listed = server.api(Some(&staff)).get("/v1/alerts?limit=500").await;
    let titles = listed.texts("alerts", "title");
    assert_eq!(titles.len(), 4, "{titles:?}");
    assert!(!titles.contains(&"one too many"));
    println!("alerts per store: 3 accepted, the 4th refused 429 with Retry-After {wait} s");
}

#[tokio::test]
async fn the_default_alert_allowance_is_thirty_an_hour() {
    let server = TestServer::start_with(&["--rate-limits", "on"]).await;
    let staff = server.staff_token("moderator");
    let store = server.member(&staff, "Main Street", MANHATTAN, 25.0).await;
    let api = server.api(Some(&store.token));
    for n in 0..30 {
        api.post_alert(&casing_at(&format!("casing {n}"), MANHATTAN, 25.0))
            .await;
    }
    api.post("/v1/alerts", &casing_at("31st", MANHATTAN, 25.0))
        .await
        .problem(429, "rate_limited");
}

#[tokio::test]
async fn pledges_per_address_per_hour() {
    let server =
        TestServer::start_with(&["--rate-limits", "on", "--pledges-per-address-per-hour", "2"])
            .await;
    let staff = server.staff_token("moderator");
    let anonymous = server.anonymous();
    // Invalid pledges take nothing.
    anonymous
        .post("/v1/pledge", &json!({"store_name": "x"}))
        .await
        .problem(422, "invalid_input");
    for name in ["First Jewelers", "Second Jewelers"] {
        let reply = anonymous
            .post("/v1/pledge", &pledge_body(name, MANHATTAN, 25.0))
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
    }
    let refused = anonymous
        .post(
            "/v1/pledge",
            &pledge_body("Third Jewelers", MANHATTAN, 25.0),
        )
        .await;
    refused.problem(429, "rate_limited");
    let wait = retry_after(&refused, 3_600);
    let pending = server
        .api(Some(&staff))
        .get("/v1/stores?status=pending")
        .await;
    let names = pending.texts("stores", "name");
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!names.contains(&"Third Jewelers"));
    println!("pledges per address: 2 accepted, the 3rd refused 429 with Retry-After {wait} s");
}

#[tokio::test]
async fn guessing_tokens_gets_the_address_held() {
    let server = TestServer::start_with(&[
        "--rate-limits",
        "on",
        "--failed-auths-per-address-per-hour",
        "3",
    ])
    .await;
    let staff = server.staff_token("moderator");
    // Good tokens count nothing.
    for _ in 0..10 {
        assert_eq!(server.api(Some(&staff)).get("/v1/me").await.status, 200);
    }
    for n in 0..3 {
        server
            .api(Some(&format!("p4p_guess{n}")))
            .get("/v1/me")
            .await
            .problem(401, "unauthorized");
    }
    let refused = server.api(Some("p4p_guess3")).get("/v1/me").await;
    refused.problem(429, "rate_limited");
    let wait = retry_after(&refused, 3_600);
    // Held: a token this address never presented is not looked up now,
    // even a good one, and streams are refused the same way.
    let unseen = server.staff_token("moderator");
    server
        .api(Some(&unseen))
        .get("/v1/me")
        .await
        .problem(429, "rate_limited");
    assert_eq!(server.try_stream("p4p_guess4", None).await.err(), Some(429));
    // A request without any token is not a guess.
    server
        .anonymous()
        .get("/v1/me")
        .await
        .problem(401, "unauthorized");
    println!(
        "failed auths per address: 3 answered 401, then 429 (Retry-After {wait} s) for every token not seen valid from the address"
    );
}

#[tokio::test]
async fn a_guesser_behind_the_shops_nat_cannot_lock_out_the_shops_tokens() {
    // The shop and the guesser share 127.0.0.1 (one NAT); the guesser sends
    // 61 bad tokens, then 2 a minute, as in the review.
    let server = TestServer::start_with(&["--rate-limits", "on"]).await;
    let staff = server.staff_token("moderator");
    let shop = server
        .member(&staff, "Corner Jewelers", MANHATTAN, 25.0)
        .await;
    let shop_api = server.api(Some(&shop.token));
    assert_eq!(shop_api.get("/v1/me").await.status, 200);
    // A second device of the shop, used once, then revoked.
    let tablet = shop_api
        .post("/v1/me/tokens", &json!({ "label": "old tablet" }))
        .await;
    assert_eq!(tablet.status, 201, "{tablet:?}");
    let (tablet_id, tablet) = (tablet.i64("id"), tablet.str("token").to_owned());
    assert_eq!(server.api(Some(&tablet)).get("/v1/me").await.status, 200);
    let revoked = shop_api.delete(&format!("/v1/me/tokens/{tablet_id}")).await;
    assert_eq!(revoked.status, 200, "{revoked:?}");

    let mut unauthorized = 0;
    let mut limited = 0;
    for n in 0..61 {
        match server
            .api(Some(&format!("p4p_guess{n:040}")))
            .get("/v1/me")
            .await
            .status
        {
            401 => unauthorized += 1,
            429 => limited += 1,
            other => panic!("a guess answered {other}"),
        }
    }
    let fresh_guesses = ["p4p_fresh_guess_a", "p4p_fresh_guess_b"];
    for guess in fresh_guesses {
        server
            .api(Some(guess))
            .get("/v1/me")
            .await
            .problem(429, "rate_limited");
    }
    // The shop's token, seen valid from this address, still answers 200,
    // and opens its stream.
    let mut answered = 0;
    for _ in 0..5 {
        assert_eq!(shop_api.get("/v1/me").await.status, 200);
        answered += 1;
    }
    let mut stream = server.stream(&shop.token, None).await;
    hello_head(&stream.next().await);
    // The revoked tablet token does not pass; nor does a good token this
    // address never presented, until the hold ends.
    server
        .api(Some(&tablet))
        .get("/v1/me")
        .await
        .problem(429, "rate_limited");
    let unseen = server.staff_token("moderator");
    server
        .api(Some(&unseen))
        .get("/v1/me")
        .await
        .problem(429, "rate_limited");
    // From another address that token is fine.
    let elsewhere = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().ok())
        .build()
        .expect("client");
    let reply = elsewhere
        .get(format!("{}/v1/me", server.url))
        .bearer_auth(&unseen)
        .send()
        .await
        .expect("answer");
    assert_eq!(reply.status(), 200);
    println!(
        "a guesser behind the shop's NAT: 61 guesses ({unauthorized} answered 401, {limited} 429), \
         fresh guesses 429; the shop's token answered 200 {answered} times and opened its stream; \
         a revoked token and one never seen from the address: 429"
    );
}

#[tokio::test]
async fn minting_tokens_is_rate_limited_for_stores_and_admins() {
    let server =
        TestServer::start_with(&["--rate-limits", "on", "--tokens-per-store-per-hour", "3"]).await;
    let staff = server.staff_token("moderator");
    let store = server.member(&staff, "Main Street", MANHATTAN, 25.0).await;
    let other = server.member(&staff, "Newark Gold", NEWARK, 25.0).await;
    let api = server.api(Some(&store.token));
    // A bad label takes nothing.
    api.post("/v1/me/tokens", &json!({ "label": "" }))
        .await
        .problem(422, "invalid_input");
    let mut minted = Vec::new();
    for n in 0..3 {
        let reply = api
            .post("/v1/me/tokens", &json!({ "label": format!("device {n}") }))
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        minted.push(reply.str("token").to_owned());
    }
    // Neither the store's token nor a token it minted can go on.
    for token in [&store.token, &minted[0]] {
        let refused = server
            .api(Some(token))
            .post("/v1/me/tokens", &json!({ "label": "one more" }))
            .await;
        refused.problem(429, "rate_limited");
        let wait = retry_after(&refused, 3_600);
        assert!(wait > 60, "Retry-After {wait}");
    }
    let listed = api.get("/v1/me/tokens").await;
    assert_eq!(
        listed.body["tokens"].as_array().map(Vec::len),
        Some(4),
        "{listed:?}"
    );
    // Another store has its own allowance; an admin token is limited too.
    let reply = server
        .api(Some(&other.token))
        .post("/v1/me/tokens", &json!({ "label": "till" }))
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let admin = server.api(Some(&server.staff_token("admin")));
    for n in 0..3 {
        let reply = admin
            .post(
                "/v1/me/tokens",
                &json!({ "label": format!("staff {n}"), "role": "moderator" }),
            )
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
    }
    admin
        .post("/v1/me/tokens", &json!({ "label": "staff 3" }))
        .await
        .problem(429, "rate_limited");
    println!("tokens per store per hour 3: a store's 4th token and an admin's 4th refused 429");
}

#[tokio::test]
async fn a_store_opening_more_streams_than_allowed_gets_429() {
    let server =
        TestServer::start_with(&["--streams-per-token", "2", "--streams-per-store", "3"]).await;
    let staff = server.staff_token("moderator");
    let store = server.member(&staff, "Main Street", MANHATTAN, 25.0).await;
    let api = server.api(Some(&store.token));
    let second = api
        .post("/v1/me/tokens", &json!({ "label": "tablet" }))
        .await;
    assert_eq!(second.status, 201, "{second:?}");
    let second = second.str("token").to_owned();
    let mut open = Vec::new();
    for token in [&store.token, &store.token, &second] {
        let mut stream = server.stream(token, None).await;
        hello_head(&stream.next().await);
        open.push(stream);
    }
    // The second token has a stream left of its own, but the store has none.
    assert_eq!(server.try_stream(&second, None).await.err(), Some(429));
    // Staff and another store are not affected.
    let other = server.member(&staff, "Newark Gold", NEWARK, 25.0).await;
    let mut elsewhere = server.stream(&other.token, None).await;
    hello_head(&elsewhere.next().await);
    let mut staff_stream = server.stream(&staff, None).await;
    hello_head(&staff_stream.next().await);
    // Closing one of the store's streams makes room.
    open.remove(0).close().await;
    let mut reopened = None;
    for _ in 0..100 {
        if let Ok(stream) = server.try_stream(&second, None).await {
            reopened = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut reopened = reopened.expect("room once a stream closed");
    hello_head(&reopened.next().await);
    api.post_alert(&casing_at("still live", MANHATTAN, 25.0))
        .await;
    for stream in open.iter_mut().chain([&mut reopened]) {
        assert_eq!(stream.next().await["type"], "alert");
    }
    println!("streams per store 3 (per token 2): the store's 4th stream refused 429, room again once one closed");
}

#[tokio::test]
async fn stream_connections_per_token_per_hour() {
    let server = TestServer::start_with(&[
        "--rate-limits",
        "on",
        "--stream-connects-per-token-per-hour",
        "2",
    ])
    .await;
    let staff = server.staff_token("moderator");
    let store = server.member(&staff, "Main Street", MANHATTAN, 25.0).await;
    for _ in 0..2 {
        let mut stream = server.stream(&store.token, None).await;
        hello_head(&stream.next().await);
        stream.close().await;
    }
    assert_eq!(server.try_stream(&store.token, None).await.err(), Some(429));
    // Another token of the same network is not affected.
    let mut staff_stream = server.stream(&staff, None).await;
    hello_head(&staff_stream.next().await);
}

#[tokio::test]
async fn live_streams_per_token_are_capped_even_with_rate_limits_off() {
    let server = TestServer::start_with(&["--streams-per-token", "2"]).await;
    let staff = server.staff_token("moderator");
    let store = server.member(&staff, "Main Street", MANHATTAN, 25.0).await;
    let mut first = server.stream(&store.token, None).await;
    hello_head(&first.next().await);
    let mut second = server.stream(&store.token, None).await;
    hello_head(&second.next().await);
    assert_eq!(server.try_stream(&store.token, None).await.err(), Some(429));
    // Closing one makes room for another.
    first.close().await;
    let mut third = None;
    for _ in 0..100 {
        if let Ok(stream) = server.try_stream(&store.token, None).await {
            third = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut third = third.expect("a stream once one was closed");
    hello_head(&third.next().await);
    // The two open ones both still deliver.
    server
        .api(Some(&store.token))
        .post_alert(&casing_at("still live", MANHATTAN, 25.0))
        .await;
    assert_eq!(second.next().await["type"], "alert");
    assert_eq!(third.next().await["type"], "alert");
}

#[tokio::test]
async fn rate_limits_off_lets_everything_through_and_says_so() {
    // TestServer sets P4P_RATE_LIMITS=off; the flag does the same.
    for args in [&[][..], &["--rate-limits", "off"][..]] {
        let mut args = args.to_vec();
        args.extend(["--alerts-per-store-per-hour", "1"]);
        let server = TestServer::start_with(&args).await;
        let staff = server.staff_token("moderator");
        let store = server.member(&staff, "Main Street", MANHATTAN, 25.0).await;
        for n in 0..5 {
            server
                .api(Some(&store.token))
                .post_alert(&casing_at(&format!("casing {n}"), MANHATTAN, 25.0))
                .await;
        }
        let logs = server.logs();
        assert!(
            logs.lines()
                .any(|line| line.contains("WARN") && line.contains("rate limits are OFF")),
            "no startup warning in {logs}"
        );
    }
}

#[tokio::test]
async fn oversized_client_messages_are_closed_with_1009() {
    let (server, _staff, store) = TestServer::with_store().await;
    let mut stream = server.stream(&store.token, None).await;
    hello_head(&stream.next().await);
    stream
        .send(Message::Text("x".repeat(5 * 1024).into()))
        .await;
    assert_eq!(stream.closed().await, Some(1009));
    // 4 KiB is still taken.
    let mut stream = server.stream(&store.token, None).await;
    hello_head(&stream.next().await);
    stream
        .send(Message::Text("x".repeat(4 * 1024).into()))
        .await;
    stream.assert_quiet(Duration::from_millis(500)).await;
    server
        .api(Some(&store.token))
        .post_alert(&casing_at("after a big pong", MANHATTAN, 25.0))
        .await;
    assert_eq!(stream.next().await["type"], "alert");
}

#[tokio::test]
async fn chatty_clients_are_closed_with_1008() {
    let (server, _staff, store) = TestServer::with_store().await;
    let mut stream = server.stream(&store.token, None).await;
    hello_head(&stream.next().await);
    for _ in 0..200 {
        stream.send(Message::Text("hello?".into())).await;
    }
    assert_eq!(stream.closed().await, Some(1008));
}

#[tokio::test]
async fn browser_origins_must_be_allowed() {
    let server =
        TestServer::start_with(&["--allowed-origins", "https://console.example.org"]).await;
    let staff = server.staff_token("moderator");
    let store = server.member(&staff, "Main Street", MANHATTAN, 25.0).await;
    assert_eq!(
        server
            .try_stream_with(&store.token, &[("Origin", "https://evil.example.com")])
            .await
            .err(),
        Some(403)
    );
    let mut allowed = server
        .try_stream_with(&store.token, &[("Origin", "https://console.example.org")])
        .await
        .expect("the allowed origin");
    hello_head(&allowed.next().await);
    // Without an Origin (not a browser) nothing changes.
    let mut plain = server.stream(&store.token, None).await;
    hello_head(&plain.next().await);
    // With no allow-list at all, every browser origin is refused but the
    // server's own: its bind address over http by default.
    let (server, _staff, store) = TestServer::with_store().await;
    assert_eq!(
        server
            .try_stream_with(&store.token, &[("Origin", "http://localhost:3000")])
            .await
            .err(),
        Some(403)
    );
    let mut own = server
        .try_stream_with(&store.token, &[("Origin", &server.url)])
        .await
        .expect("the server's own origin");
    hello_head(&own.next().await);
}

/// `--public-url` (API.md, Settings): the origin users reach the server at
/// may always open streams, whatever `--allowed-origins` says.
#[tokio::test]
async fn the_public_urls_origin_may_always_open_streams() {
    let server = TestServer::start_with(&[
        "--public-url",
        "https://p4p.example.org/",
        "--allowed-origins",
        "https://console.example.org",
    ])
    .await;
    let staff = server.staff_token("moderator");
    let store = server.member(&staff, "Main Street", MANHATTAN, 25.0).await;
    for allowed in ["https://p4p.example.org", "https://console.example.org"] {
        let mut stream = server
            .try_stream_with(&store.token, &[("Origin", allowed)])
            .await
            .unwrap_or_else(|status| panic!("{allowed}: {status}"));
        hello_head(&stream.next().await);
    }
    for refused in ["http://p4p.example.org", "https://p4p.example.org.evil.com"] {
        assert_eq!(
            server
                .try_stream_with(&store.token, &[("Origin", refused)])
                .await
                .err(),
            Some(403),
            "{refused}"
        );
    }
    assert!(server.logs().contains("public_url=https://p4p.example.org"));
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_with_503() {
    let server = TestServer::start_with(&["--max-connections", "3"]).await;
    let staff = server.staff_token("moderator");
    let store = server.member(&staff, "Main Street", MANHATTAN, 25.0).await;
    // Three streams hold the three places (the places of the requests that
    // made the store free up as the server sees them close: retry).
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut opened = None;
        for _ in 0..100 {
            match server.try_stream(&store.token, None).await {
                Ok(stream) => {
                    opened = Some(stream);
                    break;
                }
                Err(503) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(status) => panic!("stream refused: {status}"),
            }
        }
        let mut stream = opened.expect("a place for the stream");
        hello_head(&stream.next().await);
        streams.push(stream);
    }
    // A new connection beyond the cap gets a whole 503 problem document.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let mut refused = 0;
    for _ in 0..3 {
        let response = fresh
            .get(format!("{}/healthz", server.url))
            .send()
            .await
            .expect("a refusal is an answer");
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert!(response.headers().contains_key("retry-after"));
        let body: serde_json::Value = response.json().await.expect("problem document");
        assert_eq!(body["code"], "too_many_connections");
        refused += 1;
    }
    // Closing a stream frees its place.
    streams.pop().expect("a stream").close().await;
    let mut served = false;
    for _ in 0..100 {
        let response = fresh
            .get(format!("{}/healthz", server.url))
            .send()
            .await
            .expect("answer");
        if response.status() == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "a place was not freed");
    println!(
        "connection cap 3: {refused} connections refused 503, served again once a stream closed"
    );
}

#[tokio::test]
async fn a_request_that_takes_too_long_is_answered_503() {
    // The database is locked by another process (a backup, say) for longer
    // than the request timeout.
    // On SQLite whatever P4P_TEST_DATABASE says: PostgreSQL's outage is
    // tried in faults.rs.
    let server = TestServer::start_on_sqlite(&["--request-timeout-secs", "1"]).await;
    let staff = server.staff_token("moderator");
    let store = server.member(&staff, "Main Street", MANHATTAN, 25.0).await;
    let database = server.sqlite_path().expect("a SQLite database").to_owned();
    let mut lock = tokio::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             sys.stdin.read()\n\
             c.execute('COMMIT')",
            &database,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3");
    // The lock holds until the test closes python's input.
    let release = lock.stdin.take().expect("stdin");
    let stdout = lock.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    assert_eq!(
        lines.next_line().await.expect("read").as_deref(),
        Some("locked")
    );
    let api = server.api(Some(&store.token));
    let reply = api
        .post("/v1/alerts", &casing_at("while locked", MANHATTAN, 25.0))
        .await;
    let detail = reply.problem(503, "timeout");
    assert!(reply.headers.contains_key("retry-after"), "{reply:?}");
    assert!(detail.contains("1 s"), "{detail}");
    drop(release);
    lock.wait().await.expect("the lock is released");
    // Once the lock is gone, the server serves again by itself.
    api.post_alert(&casing_at("after the lock", MANHATTAN, 25.0))
        .await;
}

#[tokio::test]
async fn connections_that_send_nothing_lose_their_place() {
    // Idle time: two ping intervals and the request timeout, 3 s here.
    let server = TestServer::start_with(&[
        "--max-connections",
        "2",
        "--ping-interval-secs",
        "1",
        "--request-timeout-secs",
        "1",
    ])
    .await;
    let address = server.url.trim_start_matches("http://").to_owned();
    // Two connections that never finish a request hold both places...
    let mut silent = Vec::new();
    for _ in 0..2 {
        let mut tcp = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        tokio::io::AsyncWriteExt::write_all(&mut tcp, b"GET /healthz HTTP/1.1\r\n")
            .await
            .expect("half a request");
        silent.push(tcp);
    }
    // ...so that a third is refused...
    server
        .anonymous()
        .get("/healthz")
        .await
        .problem(503, "too_many_connections");
    // ...until the server drops them: each reads the end of its stream
    // (or a reset), with no answer to its half request.
    for mut tcp in silent {
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(
            PATIENCE,
            tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut rest),
        )
        .await
        .expect("the silent connection was not dropped");
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    }
    let reply = server.anonymous().get("/healthz").await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn the_default_connection_cap_keeps_below_the_open_file_limit() {
    // A server allowed 300 open files in all: its default cap leaves a
    // reserve for the database and logs (300 - 128 - 2 x 8 = 156).
    let dir = tempfile::tempdir().expect("temp dir");
    let database = format!("sqlite:{}", dir.path().join("p4p.db").display());
    let log = std::fs::File::create(dir.path().join("server.log")).expect("log");
    let mut server = tokio::process::Command::new("prlimit")
        .arg("--nofile=300:300")
        .arg("--")
        .arg(server_binary())
        .args(["--bind", "127.0.0.1:0", "--database-url", &database])
        // All 400 come from 127.0.0.1, and hold on for the whole test.
        .args(["--connections-per-address", "0"])
        .args(["--header-read-timeout-secs", "60"])
        .env("P4P_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("prlimit p4p-server (util-linux prlimit)");
    let stdout = server.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("the server says where it listens")
        .expect("read")
        .expect("a line");
    let url = line
        .strip_prefix("p4p-server listening on ")
        .expect("the listening line")
        .to_owned();
    let address = url.trim_start_matches("http://").to_owned();
    // 400 connections that hold on (more than the process could open
    // files for)...
    let mut held = Vec::new();
    for _ in 0..400 {
        held.push(
            tokio::net::TcpStream::connect(&address)
                .await
                .expect("connect"),
        );
    }
    // ...and the server still answers, with a clean 503, not a failure to
    // accept (while it is answering the most refusals it may at once, a
    // connection is closed unanswered: the client retries); and it serves
    // as soon as they go.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(response) = client.get(format!("{url}/healthz")).send().await {
            answered = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = answered.expect("an answer");
    assert_eq!(refused.status().as_u16(), 503);
    let body: serde_json::Value = refused.json().await.expect("problem document");
    assert_eq!(body["code"], "too_many_connections");
    drop(held);
    let mut served = false;
    for _ in 0..100 {
        let reply = client.get(format!("{url}/readyz")).send().await;
        if reply.is_ok_and(|r| r.status() == 200) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "not served once the connections went");
    let logs = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    assert!(logs.contains("connection_cap=156"), "{logs}");
    assert!(logs.contains("at the connection limit"), "{logs}");
    assert!(!logs.contains("Too many open files"), "{logs}");
    println!("open-file limit 300: cap 156; 400 held connections, the rest refused, 503 answered, no descriptor ran out");
}

#[tokio::test]
async fn alert_edits_per_store_per_hour() {
    // Each edit of a published alert goes out to every store in reach: a
    // stolen token must not flood them by editing one alert in a loop.
    let server = TestServer::start_with(&[
        "--rate-limits",
        "on",
        "--alert-edits-per-store-per-hour",
        "2",
    ])
    .await;
    let staff = server.staff_token("moderator");
    let store = server.member(&staff, "Main Street", MANHATTAN, 25.0).await;
    let api = server.api(Some(&store.token));
    let alert = api
        .post_alert(&casing_at("original", MANHATTAN, 25.0))
        .await;
    let path = format!("/v1/alerts/{}", alert["id"]);
    for n in 0..2 {
        let reply = api
            .patch(&path, &json!({"title": format!("edit {n}")}))
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    let refused = api.patch(&path, &json!({"title": "edit 2"})).await;
    refused.problem(429, "rate_limited");
    retry_after(&refused, 3_600);
    assert_eq!(api.get(&path).await.body["title"], "edit 1");
    // Staff are not limited.
    let reply = server
        .api(Some(&staff))
        .patch(&path, &json!({"title": "by staff"}))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_allowance() {
    let server = TestServer::start_with(&[
        "--rate-limits",
        "on",
        "--pledges-per-address-per-hour",
        "1",
        "--trusted-proxies",
        "127.0.0.1",
    ])
    .await;
    let client = reqwest::Client::new();
    let pledge = |forwarded: &'static str, name: &'static str| {
        client
            .post(format!("{}/v1/pledge", server.url))
            .header("x-forwarded-for", forwarded)
            .json(&pledge_body(name, MANHATTAN, 25.0))
            .send()
    };
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(pledge("198.51.100.1", "First").await.expect("answer")),
        201
    );
    assert_eq!(
        status(pledge("198.51.100.1", "Again").await.expect("answer")),
        429
    );
    // Another client behind the same proxy is not held back...
    assert_eq!(
        status(pledge("198.51.100.2", "Second").await.expect("answer")),
        201
    );
    // ...and a client cannot pick its address by sending the header itself:
    // the proxy appends the real one, the rightmost counts.
    assert_eq!(
        status(
            pledge("203.0.113.50, 198.51.100.2", "Spoofed")
                .await
                .expect("answer")
        ),
        429
    );
}

/// What the members saw over a while: every status, request latencies,
/// alerts posted and how many of them the listening member received.
#[derive(Default)]
struct MembersSaw {
    statuses: std::collections::BTreeMap<u16, u64>,
    latencies: Vec<Duration>,
    posted: usize,
    delivered: usize,
}

impl MembersSaw {
    fn figures(&mut self) -> String {
        self.latencies.sort();
        let at = |p: f64| {
            let i = ((self.latencies.len().max(1) - 1) as f64 * p).round() as usize;
            self.latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        format!(
            "{} requests {:?}, p50 {:.1} ms, p99 {:.1} ms; {} alerts posted, {} delivered",
            self.latencies.len(),
            self.statuses,
            at(0.5),
            at(0.99),
            self.posted,
            self.delivered
        )
    }
}

/// Members read, post and listen for `how_long`, as shops do.
async fn members_at_work(
    server: &TestServer,
    poster: &Member,
    listener: &Member,
    stream: &mut Stream,
    how_long: Duration,
) -> MembersSaw {
    let mut saw = MembersSaw::default();
    let reader = server.api(Some(&listener.token));
    let author = server.api(Some(&poster.token));
    let started = std::time::Instant::now();
    while started.elapsed() < how_long {
        for path in ["/v1/me", "/v1/alerts?limit=20"] {
            let asked = std::time::Instant::now();
            let reply = reader.get(path).await;
            saw.latencies.push(asked.elapsed());
            *saw.statuses.entry(reply.status).or_default() += 1;
        }
        let asked = std::time::Instant::now();
        let posted = author
            .post("/v1/alerts", &casing_at("member's alert", MANHATTAN, 25.0))
            .await;
        saw.latencies.push(asked.elapsed());
        *saw.statuses.entry(posted.status).or_default() += 1;
        if posted.status == 201 {
            saw.posted += 1;
            let frame = stream.next().await;
            if frame.published().map(|(_, id)| id) == Some(posted.i64("id")) {
                saw.delivered += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    saw
}

#[tokio::test]
async fn forty_replays_from_zero_by_one_store_leave_the_other_members_served() {
    const HISTORY: usize = 1_000;
    const REPLAYS: usize = 40;
    const WHILE: Duration = Duration::from_secs(4);
    // Caps high enough that only the replays' turns bound the attack.
    let server =
        TestServer::start_with(&["--streams-per-store", "40", "--streams-per-token", "40"]).await;
    let staff = server.staff_token("moderator");
    let poster = server.member(&staff, "Poster", MANHATTAN, 25.0).await;
    let listener = server.member(&staff, "Listener", BROOKLYN, 25.0).await;
    let attacker = server.member(&staff, "Stolen Token", MANHATTAN, 50.0).await;
    let posting: Vec<_> = (0..8)
        .map(|n| {
            let api = server.api(Some(&poster.token));
            tokio::spawn(async move {
                for i in 0..HISTORY / 8 {
                    api.post_alert(&casing_at(&format!("history {n}.{i}"), MANHATTAN, 25.0))
                        .await;
                }
            })
        })
        .collect();
    for posting in posting {
        posting.await.expect("history");
    }
    let mut stream = server.stream(&listener.token, None).await;
    hello_head(&stream.next().await);
    let mut quiet = members_at_work(&server, &poster, &listener, &mut stream, WHILE).await;

    // 40 streams of one store replay from 0, over and over.
    let frames = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let replays = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut attack = Vec::new();
    for _ in 0..REPLAYS {
        let (url, token) = (server.url.clone(), attacker.token.clone());
        let (frames, replays) = (frames.clone(), replays.clone());
        attack.push(tokio::spawn(async move {
            loop {
                let Ok(mut replay) = stream_at(&url, &token, Some(0)).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let Ok(Some(hello)) = replay.next_within(PATIENCE).await else {
                    continue;
                };
                let head = hello_head(&hello);
                // Its turn may be long in coming: it waits.
                while let Ok(Some(frame)) = replay.next_within(Duration::from_secs(120)).await {
                    frames.fetch_add(1, Ordering::Relaxed);
                    if frame.frame.seq().is_some_and(|seq| seq >= head) {
                        replays.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                replay.close().await;
            }
        }));
    }
    let mut attacked = members_at_work(&server, &poster, &listener, &mut stream, WHILE).await;
    for task in &attack {
        task.abort();
    }
    println!(
        "members without the attack: {}\nmembers during {REPLAYS} replays from 0 of {HISTORY} alerts by one store: {}\nthe attacking store: {} replays done, {} frames received in {} s",
        quiet.figures(),
        attacked.figures(),
        replays.load(Ordering::Relaxed),
        frames.load(Ordering::Relaxed),
        WHILE.as_secs()
    );
    for saw in [&quiet, &attacked] {
        assert!(
            saw.statuses
                .keys()
                .all(|status| (200..300).contains(status)),
            "{:?}",
            saw.statuses
        );
        assert_eq!(saw.delivered, saw.posted);
        assert!(saw.posted > 0);
    }
    assert!(frames.load(Ordering::Relaxed) > 0, "the attack never ran");
}
