//! `GET /metrics`: the Prometheus text format, scraped from the real server
//! before and after it does things, each series read from the text.

use std::collections::BTreeMap;
use std::time::Duration;

use p4p_tests::places::{BOSTON, BROOKLYN, MANHATTAN};
use p4p_tests::{
    casing_at, hello_head, largest_alert, on_postgres, psql, Ended, Received, TestServer, PATIENCE,
};
use serde_json::{json, Value};

/// One series line: `name{label="value",...} number`.
#[derive(Debug)]
struct Series {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape, parsed.
struct Scrape {
    text: String,
    series: Vec<Series>,
}

impl Scrape {
    /// The sum of the series named `name` that carry all of `labels`; 0
    /// when there is none (a counter not yet touched).
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Series> + 'a {
        self.series.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|value| value == v))
        })
    }

    /// The one series named `name` with exactly `labels`.
    fn one(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Series> = self
            .matching(name, labels)
            .filter(|s| s.labels.len() == labels.len())
            .collect();
        assert_eq!(found.len(), 1, "one {name} {labels:?} in\n{}", self.text);
        found[0].value
    }

    fn has(&self, name: &str) -> bool {
        self.series.iter().any(|s| s.name == name)
    }

    /// The `# TYPE` line of a family.
    fn kind(&self, name: &str) -> Option<&str> {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# TYPE {name} ")))
    }
}

fn parse(text: String) -> Scrape {
    let series = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| parse_line(line).unwrap_or_else(|| panic!("not a series line: {line}")))
        .collect();
    Scrape { text, series }
}

fn parse_line(line: &str) -> Option<Series> {
    let (head, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().ok()?,
    };
    let Some((name, rest)) = head.split_once('{') else {
        return Some(Series {
            name: head.to_owned(),
            labels: BTreeMap::new(),
            value,
        });
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest.strip_suffix('}')?.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        }
        labels.insert(key, value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some(Series {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Starts a server that serves metrics to operators on a port of its own.
async fn metered(args: &[&str]) -> TestServer {
    let mut args = args.to_vec();
    args.extend(["--metrics-bind", "127.0.0.1:0"]);
    TestServer::start_with(&args).await
}

async fn scrape(server: &TestServer) -> Scrape {
    let reply = server.operators().get("/metrics").await;
    assert_eq!(reply.status, 200, "on the operators' listener: {reply:?}");
    assert!(
        reply.content_type.starts_with("text/plain"),
        "{}",
        reply.content_type
    );
    let Value::String(text) = reply.body else {
        panic!("not text: {:?}", reply.body)
    };
    parse(text)
}

/// Scrapes until `done` holds, failing after [`PATIENCE`]: some series move
/// a moment after the client sees why (a stream's end, for one).
async fn scrape_until(server: &TestServer, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let scrape = scrape(server).await;
        if done(&scrape) {
            return scrape;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {PATIENCE:?}:\n{}",
            scrape.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const DURATION_COUNT: &str = "p4p_http_request_duration_seconds_count";

fn requests(scrape: &Scrape, method: &str, route: &str, status: &str) -> f64 {
    scrape.sum(
        DURATION_COUNT,
        &[("method", method), ("route", route), ("status", status)],
    )
}

fn alerts(scrape: &Scrape, kind: &str, status: &str) -> f64 {
    scrape.one("p4p_alerts", &[("kind", kind), ("status", status)])
}

#[tokio::test]
async fn every_series_moves_with_what_the_server_does() {
    let server = metered(&["--moderation", "pre"]).await;
    let staff = server.staff_token("moderator");
    let poster = server.member(&staff, "Poster", MANHATTAN, 25.0).await;
    // Far from every alert here: its stream gets no frame.
    let far = server.member(&staff, "Far Away", BOSTON, 1.0).await;

    let before = scrape(&server).await;
    for (name, kind) in [
        ("p4p_streams_open", "gauge"),
        ("p4p_alerts", "gauge"),
        ("p4p_frames_sent_total", "counter"),
        ("p4p_frames_dropped_total", "counter"),
        ("p4p_database_errors_total", "counter"),
        ("p4p_http_request_duration_seconds", "histogram"),
    ] {
        assert_eq!(before.kind(name), Some(kind), "{name}:\n{}", before.text);
        assert!(
            before.text.contains(&format!("# HELP {name} ")),
            "{name} is described"
        );
    }
    assert_eq!(before.one("p4p_streams_open", &[]), 0.0);
    for kind in ["casing", "burglary"] {
        for status in ["pending", "published", "rejected", "retracted"] {
            assert_eq!(alerts(&before, kind, status), 0.0);
        }
    }

    let mut staff_stream = server.stream(&staff, None).await;
    let h0 = hello_head(&staff_stream.next().await);
    let mut far_stream = server.stream(&far.token, None).await;
    hello_head(&far_stream.next().await);
    let open = scrape(&server).await;
    assert_eq!(open.one("p4p_streams_open", &[]), 2.0);

    // Two kinds, all pending first (pre-moderation); one casing approved,
    // the burglary rejected.
    let api = server.api(Some(&poster.token));
    let first = api
        .post_alert(&casing_at("first casing", MANHATTAN, 5.0))
        .await;
    api.post_alert(&casing_at("second casing", MANHATTAN, 5.0))
        .await;
    let mut burglary = casing_at("burglary", MANHATTAN, 5.0);
    burglary["kind"] = json!("burglary");
    let burglary = api.post_alert(&burglary).await;
    let moderator = server.api(Some(&staff));
    let approved = moderator
        .post(&format!("/v1/alerts/{}/approve", first["id"]), &json!({}))
        .await;
    assert_eq!(approved.status, 200, "{approved:?}");
    let rejected = moderator
        .post(
            &format!("/v1/alerts/{}/reject", burglary["id"]),
            &json!({ "reason": "not a burglary" }),
        )
        .await;
    assert_eq!(rejected.status, 200, "{rejected:?}");

    // A 401, with a would-be token in the path's query and the header.
    let intruder = "intruder-secret-0123456789";
    let refused = server
        .api(Some(intruder))
        .get(&format!(
            "/v1/alerts/{}?access_token={intruder}",
            first["id"]
        ))
        .await;
    assert_eq!(refused.status, 401, "{refused:?}");
    let unknown = server.anonymous().get("/no/such/path/4242").await;
    assert_eq!(unknown.status, 404);

    // The staff stream gets every event whose content still stands when
    // the hub sends it (a `pending` frame of an alert approved or rejected
    // meanwhile is withdrawn, never sent): its frames are all the frames sent.
    let mut probe = server.stream(&staff, None).await;
    let h1 = hello_head(&probe.next().await);
    probe.close().await;
    let mut live = Vec::new();
    while live.last().and_then(|f: &Received| f.frame.seq()) != Some(h1) {
        match staff_stream.next_within(Duration::from_secs(2)).await {
            Ok(Some(frame)) => live.push(frame),
            _ => break,
        }
    }
    assert!(h1 - h0 == 4, "3 pending and 1 alert events: {h0}..{h1}");
    assert!(
        live.iter().any(|f| f["type"] == "alert" && f["seq"] == h1),
        "the approval, whose alert stands: {live:?}"
    );

    // Suspending the far store closes its stream with 4001.
    let suspended = moderator
        .post(
            &format!("/v1/stores/{}/suspend", far.id),
            &json!({ "reason": "test" }),
        )
        .await;
    assert_eq!(suspended.status, 200, "{suspended:?}");
    assert_eq!(far_stream.closed().await, Some(4001));

    let after = scrape_until(&server, "the probe and the far stream gone", |s| {
        s.one("p4p_streams_open", &[]) == 1.0
    })
    .await;
    let sent = after.one("p4p_frames_sent_total", &[]) - before.one("p4p_frames_sent_total", &[]);
    assert_eq!(sent, live.len() as f64, "every live frame, counted once");
    assert_eq!(alerts(&after, "casing", "published"), 1.0);
    assert_eq!(alerts(&after, "casing", "pending"), 1.0);
    assert_eq!(alerts(&after, "burglary", "rejected"), 1.0);
    assert_eq!(alerts(&after, "burglary", "pending"), 0.0);
    assert_eq!(
        after.sum("p4p_stream_closes_total", &[("code", "4001")]),
        1.0
    );
    assert_eq!(
        after.one("p4p_database_errors_total", &[]),
        before.one("p4p_database_errors_total", &[])
    );
    assert_eq!(after.one("p4p_frames_dropped_total", &[]), 0.0);

    // Request durations, by matched route.
    assert_eq!(
        requests(&after, "POST", "/v1/alerts", "201")
            - requests(&before, "POST", "/v1/alerts", "201"),
        3.0
    );
    assert_eq!(
        requests(&after, "POST", "/v1/alerts/{id}/approve", "200"),
        1.0
    );
    assert_eq!(
        requests(&after, "POST", "/v1/alerts/{id}/reject", "200"),
        1.0
    );
    assert_eq!(requests(&after, "GET", "/v1/alerts/{id}", "401"), 1.0);
    assert_eq!(requests(&after, "GET", "unmatched", "404"), 1.0);
    // Scrapes come to the operators' listener, which times nothing.
    assert_eq!(requests(&after, "GET", "/metrics", "200"), 0.0);
    assert!(requests(&after, "GET", "/v1/stream", "101") >= 2.0);
    let buckets: Vec<&str> = after
        .matching(
            "p4p_http_request_duration_seconds_bucket",
            &[("route", "/v1/alerts/{id}"), ("status", "401")],
        )
        .map(|s| s.labels["le"].as_str())
        .collect();
    assert!(buckets.len() > 5, "real buckets: {buckets:?}");
    assert!(buckets.contains(&"+Inf"));
    for series in after.series.iter() {
        if let Some(route) = series.labels.get("route") {
            assert!(
                route == "unmatched"
                    || (route.starts_with('/')
                        && !route.contains('?')
                        && !route.split('/').any(|part| part.parse::<i64>().is_ok())),
                "a matched route, never a raw path: {route}"
            );
        }
    }
    for secret in [staff.as_str(), &poster.token, &far.token, intruder] {
        assert!(!after.text.contains(secret), "a token in the metrics");
    }

    // A replay from 0: the network as it is now (the second casing still
    // waiting, the first published; the rejected burglary and the first's
    // old pending frame withdrawn), counted as it is written.
    let replay_before = scrape(&server).await;
    let mut replay = server.stream(&staff, Some(0)).await;
    let head = hello_head(&replay.next().await);
    assert_eq!(head, h1);
    let replayed = replay.take(2).await;
    let kinds: Vec<&str> = replayed.iter().filter_map(|f| f["type"].as_str()).collect();
    assert_eq!(kinds, ["pending", "alert"], "{replayed:?}");
    replay.assert_quiet(Duration::from_millis(300)).await;
    let replay_after = scrape(&server).await;
    assert_eq!(
        replay_after.one("p4p_frames_sent_total", &[])
            - replay_before.one("p4p_frames_sent_total", &[]),
        2.0,
        "every replayed frame"
    );
    assert_eq!(replay_after.one("p4p_streams_open", &[]), 2.0);
    println!("{}", replay_after.text);
}

#[tokio::test]
async fn a_client_too_slow_for_its_queue_is_counted_as_dropped_frames_and_a_4008_close() {
    let server = metered(&["--stream-queue", "4"]).await;
    let staff = server.staff_token("moderator");
    let poster = server.member(&staff, "Poster", MANHATTAN, 25.0).await;
    let reader = server.member(&staff, "Reader", BROOKLYN, 25.0).await;
    let before = scrape(&server).await;
    let mut slow = server.tiny_window_stream(&reader.token).await;
    hello_head(&slow.next().await);
    let api = server.api(Some(&poster.token));
    const BURST: usize = 250;
    for i in 0..BURST {
        api.post_alert(&largest_alert(&format!("burst {i}"), MANHATTAN))
            .await;
    }
    let mut seen = 0;
    let code = loop {
        match slow.next_within(PATIENCE).await {
            Ok(Some(_)) => seen += 1,
            Ok(None) => panic!("neither all frames nor a close"),
            Err(Ended::Closed(code)) => break code,
            Err(Ended::Dropped) => break None,
        }
    };
    assert_eq!(code, Some(4008), "received {seen} frames first");
    let after = scrape_until(&server, "the slow stream gone", |s| {
        s.one("p4p_streams_open", &[]) == 0.0
    })
    .await;
    let dropped = after.one("p4p_frames_dropped_total", &[]);
    let sent = after.one("p4p_frames_sent_total", &[]) - before.one("p4p_frames_sent_total", &[]);
    assert!(dropped >= 1.0, "{}", after.text);
    assert!(
        sent >= seen as f64 && sent + dropped <= BURST as f64,
        "sent {sent}, dropped {dropped}, seen {seen}"
    );
    assert_eq!(
        after.sum("p4p_stream_closes_total", &[("code", "4008")]),
        1.0
    );
    println!("slow consumer: {seen} frames read, {sent} sent, {dropped} dropped, closed with 4008");
}

#[tokio::test]
async fn without_the_database_the_other_series_still_answer_and_the_error_is_counted() {
    let server = metered(&[]).await;
    let staff = server.staff_token("moderator");
    let store = server.member(&staff, "Main Street", MANHATTAN, 25.0).await;
    server
        .api(Some(&store.token))
        .post_alert(&casing_at("counted", MANHATTAN, 5.0))
        .await;
    let mut stream = server.stream(&store.token, None).await;
    hello_head(&stream.next().await);
    let before = scrape(&server).await;
    assert_eq!(alerts(&before, "casing", "published"), 1.0);
    let errors = before.one("p4p_database_errors_total", &[]);

    let database = server.postgres_database().map(str::to_owned);
    match &database {
        // A real outage: no new connections, the open ones cut.
        Some(database) => {
            psql(&format!(
                "ALTER DATABASE {database} ALLOW_CONNECTIONS false"
            ));
            psql(&format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = '{database}'"
            ));
        }
        // SQLite cannot be taken away from an open file: the table goes.
        None => {
            use sqlx::Connection;
            let mut connection = sqlx::SqliteConnection::connect(&server.database_url)
                .await
                .expect("open the SQLite file");
            sqlx::query("ALTER TABLE alerts RENAME TO alerts_gone")
                .execute(&mut connection)
                .await
                .expect("rename the alerts table");
            connection.close().await.expect("close");
        }
    }
    assert!(on_postgres() == database.is_some());

    let down = scrape(&server).await;
    assert!(!down.has("p4p_alerts"), "no stale counts:\n{}", down.text);
    assert_eq!(down.one("p4p_streams_open", &[]), 1.0);
    assert!(down.has("p4p_frames_sent_total"));
    assert!(down.has(DURATION_COUNT));
    assert!(
        down.one("p4p_database_errors_total", &[]) > errors,
        "{}",
        down.text
    );
    if let Some(database) = &database {
        psql(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true"));
    }
}

#[tokio::test]
async fn the_public_listener_never_serves_metrics() {
    // Without --metrics-bind, metrics are served nowhere...
    let server = TestServer::start().await;
    let staff = server.staff_token("admin");
    for api in [server.anonymous(), server.api(Some(&staff))] {
        api.get("/metrics").await.problem(404, "not_found");
    }
    // ...and with it, only on the operators' address.
    let server = metered(&[]).await;
    server
        .anonymous()
        .get("/metrics")
        .await
        .problem(404, "not_found");
    let scraped = scrape(&server).await;
    assert!(scraped.has("p4p_http_request_duration_seconds_count"));
    // The operators' listener serves nothing else.
    server
        .operators()
        .get("/v1/me")
        .await
        .problem(404, "not_found");
    // The document still lists it, said to be the operators'.
    let document = server.anonymous().get("/v1/openapi.json").await;
    let described = document.body["paths"]["/metrics"]["get"]["description"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(described.contains("--metrics-bind"), "{described}");
    println!(
        "public /metrics: 404; operators' {}: 200",
        server.metrics_url.as_deref().unwrap_or("-")
    );
}
