//! Slow clients and greedy hosts: a connection that sends its request's
//! head a byte at a time is cut once the header read timeout passes, and
//! one client address holds at most its share of the connection cap, so
//! that the other members' requests are answered and their streams keep
//! delivering while a host tries to take every place.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use p4p_tests::places::*;
use p4p_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The server's address, for raw connections.
fn address_of(server: &TestServer) -> SocketAddr {
    server
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("the server's address")
}

/// A raw connection to the server from the loopback address `source`
/// (127.0.0.2 and up are distinct client addresses on Linux).
async fn connect_from(source: &str, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.parse().expect("address"), 0))?;
    socket.connect(server).await
}

/// A slowloris connection: sends a request's head one byte every `every`,
/// never finishing it, until the server closes the connection (or
/// `give_up` passes). How long it lived, and whether the server answered
/// anything (it should not: a head never finished is never answered).
async fn trickle(mut tcp: TcpStream, every: Duration, give_up: Duration) -> (Duration, bool) {
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: p4p\r\nX-Padding: "
        .iter()
        .copied();
    let mut bytes = head.chain(std::iter::repeat(b'a'));
    let mut buffer = [0u8; 256];
    let mut answered = false;
    while started.elapsed() < give_up {
        let byte = bytes.next().unwrap_or(b'a');
        if tcp.write_all(&[byte]).await.is_err() {
            break;
        }
        match tokio::time::timeout(every, tcp.read(&mut buffer)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {
                answered = true;
                break;
            }
        }
    }
    (started.elapsed(), answered)
}

/// Latency figures of answered requests.
fn percentiles(latencies: &mut [Duration]) -> String {
    if latencies.is_empty() {
        return "none".to_owned();
    }
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3
    )
}

/// The value of the series `name{limit="..."}` on the operators' listener.
async fn rate_limited(server: &TestServer, limit: &str) -> u64 {
    let scrape = server.operators().get("/metrics").await;
    let text = scrape.body.as_str().unwrap_or_default().to_owned();
    let series = format!("p4p_rate_limited_total{{limit=\"{limit}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

#[tokio::test]
async fn two_hundred_slow_header_connections_from_one_host_leave_the_members_served() {
    const ATTACKERS: usize = 200;
    const ATTACK: Duration = Duration::from_secs(8);
    let server = TestServer::start_with(&[
        "--max-connections",
        "60",
        "--connections-per-address",
        "20",
        "--header-read-timeout-secs",
        "2",
        "--metrics-bind",
        "127.0.0.1:0",
    ])
    .await;
    let staff = server.staff_token("moderator");
    let poster = server.member(&staff, "Poster", MANHATTAN, 25.0).await;
    let listener = server.member(&staff, "Listener", BROOKLYN, 25.0).await;
    let mut stream = server.stream(&listener.token, None).await;
    hello_head(&stream.next().await);
    let target = address_of(&server);

    // 200 connections from 127.0.0.2, one header byte a second (well
    // within the idle cut), each reopened as soon as the server drops it.
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let lifetimes = Arc::new(Mutex::new(Vec::new()));
    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        let (stop, opened, answered, lifetimes) = (
            stop.clone(),
            opened.clone(),
            answered.clone(),
            lifetimes.clone(),
        );
        attackers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(tcp) = connect_from("127.0.0.2", target).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                opened.fetch_add(1, Ordering::Relaxed);
                // However long the attack has left, the connection is
                // only given up by the server.
                let (lived, got_answer) = trickle(tcp, Duration::from_secs(1), PATIENCE).await;
                if got_answer {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                lifetimes.lock().expect("lifetimes").push(lived);
                // A refused connection may be closed at once: not a busy loop.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }

    // Meanwhile, members ask and post, from 127.0.0.1.
    let started = Instant::now();
    let anonymous = server.anonymous();
    let member = server.api(Some(&listener.token));
    let author = server.api(Some(&poster.token));
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    let mut latencies = Vec::new();
    let mut posted = 0;
    let mut delivered = 0;
    while started.elapsed() < ATTACK {
        for (path, api) in [("/healthz", &anonymous), ("/v1/me", &member)] {
            let asked = Instant::now();
            let reply = api.get(path).await;
            latencies.push(asked.elapsed());
            *statuses.entry(reply.status).or_default() += 1;
        }
        if started.elapsed().as_millis() / 500 > posted {
            author
                .post_alert(&casing_at(&format!("during {posted}"), MANHATTAN, 25.0))
                .await;
            posted += 1;
            let frame = stream.next().await;
            assert_eq!(frame["type"], "alert", "{frame}");
            delivered += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    // Every slow connection still open is dropped by the server itself.
    for attacker in attackers {
        tokio::time::timeout(PATIENCE * 2, attacker)
            .await
            .expect("a slow connection was never dropped")
            .expect("attacker");
    }
    let refused = rate_limited(&server, "connections_per_address").await;
    let lifetimes = lifetimes.lock().expect("lifetimes").clone();
    let longest = lifetimes.iter().max().copied().unwrap_or_default();
    let mut sorted = lifetimes.clone();
    let lived = percentiles(&mut sorted);
    let member_requests: u64 = statuses.values().sum();
    let opened = opened.load(Ordering::Relaxed);
    println!(
        "slowloris from 127.0.0.2: {ATTACKERS} at once for {} s, {opened} connections opened, \
         {refused} refused over the address's share of 20 (cap 60), {} held (20 at most at once); \
         every one dropped by the server (lived {lived}; longest {:.1} s), {} answered",
        ATTACK.as_secs(),
        opened.saturating_sub(refused),
        longest.as_secs_f64(),
        answered.load(Ordering::Relaxed),
    );
    println!(
        "members from 127.0.0.1: {member_requests} requests, statuses {statuses:?}, {}; \
         {posted} alerts posted, {delivered} delivered on the stream",
        percentiles(&mut latencies)
    );
    assert_eq!(statuses.keys().copied().collect::<Vec<_>>(), vec![200]);
    assert_eq!(delivered, posted);
    assert!(posted > 0);
    assert_eq!(
        answered.load(Ordering::Relaxed),
        0,
        "a half head was answered"
    );
    assert!(refused > 0, "the address never went over its share");
    assert_eq!(lifetimes.len() as u64, opened);
    // The stream outlived the attack and still delivers.
    author
        .post_alert(&casing_at("after", MANHATTAN, 25.0))
        .await;
    assert_eq!(stream.next().await["type"], "alert");
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_cut_when_the_header_read_timeout_passes() {
    let server = TestServer::start_with(&["--header-read-timeout-secs", "1"]).await;
    let target = address_of(&server);
    let tcp = connect_from("127.0.0.1", target).await.expect("connect");
    // A byte every 300 ms: the connection is never idle, and never done.
    let (lived, answered) = trickle(tcp, Duration::from_millis(300), PATIENCE).await;
    assert!(!answered, "a half head was answered");
    assert!(lived < PATIENCE, "the slow connection was never cut");
    // A connection that says nothing at all is cut the same way.
    let mut silent = connect_from("127.0.0.1", target).await.expect("connect");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(PATIENCE, silent.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the silent connection was never cut");
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    // A client that sends its head at once is served, of course.
    assert_eq!(server.anonymous().get("/healthz").await.status, 200);
    println!(
        "header read timeout 1 s: a head trickled every 300 ms was cut after {:.1} s, unanswered",
        lived.as_secs_f64()
    );
}

#[tokio::test]
async fn an_address_over_its_share_of_connections_is_answered_429_and_others_are_not() {
    let server = TestServer::start_with(&["--connections-per-address", "3"]).await;
    let target = address_of(&server);
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut tcp = connect_from("127.0.0.2", target).await.expect("connect");
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: p4p\r\n")
            .await
            .expect("half a head");
        held.push(tcp);
    }
    // Give the server the moment to take all three.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = connect_from("127.0.0.2", target).await.expect("connect");
    fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: p4p\r\n\r\n")
        .await
        .expect("a whole request");
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, fourth.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("retry-after: 5"), "{answer}");
    assert!(answer.contains(r#""code":"rate_limited""#), "{answer}");
    // Another address is served meanwhile; and the host, once it lets go.
    let other = reqwest::Client::builder()
        .local_address("127.0.0.3".parse::<std::net::IpAddr>().ok())
        .build()
        .expect("client");
    let served = other
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("served");
    assert_eq!(served.status(), 200);
    drop(held);
    let again = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().ok())
        .build()
        .expect("client");
    let mut back = false;
    for _ in 0..50 {
        let reply = again.get(format!("{}/healthz", server.url)).send().await;
        if reply.is_ok_and(|r| r.status() == 200) {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the host's places never came back");
    println!("connections per address 3: the 4th from 127.0.0.2 answered 429; 127.0.0.3 served");
}

#[tokio::test]
async fn a_trusted_proxy_is_not_held_to_one_address_s_share() {
    // Every client comes through the proxy (here: 127.0.0.1): its
    // connections count against the total cap only.
    let server = TestServer::start_with(&[
        "--connections-per-address",
        "2",
        "--trusted-proxies",
        "127.0.0.1",
    ])
    .await;
    let staff = server.staff_token("moderator");
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut stream = server.stream(&staff, None).await;
        hello_head(&stream.next().await);
        streams.push(stream);
    }
    assert_eq!(server.anonymous().get("/healthz").await.status, 200);
    println!("behind a trusted proxy: 4 streams and a request through one peer address");
}
