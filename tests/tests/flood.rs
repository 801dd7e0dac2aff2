//! A flood: while attackers guess tokens, spam alerts from a stolen store
//! token, spam pledges and hammer the stream endpoint, the member stores
//! keep receiving every alert they are owed, once, in order. The rate
//! limits are on, with their defaults.
//!
//! `P4P_FLOOD_SECONDS` sets how long the flood lasts (10 s in the suite;
//! RELIABILITY.md gives the longer run).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p4p_tests::places::*;
use p4p_tests::*;

/// What one kind of attacker sent and how it was answered.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    accepted: AtomicU64,
    unauthorized: AtomicU64,
    limited: AtomicU64,
    other: AtomicU64,
}

impl Tally {
    fn count(&self, status: u16, accepted: u16) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let bucket = match status {
            s if s == accepted => &self.accepted,
            401 => &self.unauthorized,
            429 => &self.limited,
            _ => &self.other,
        };
        bucket.fetch_add(1, Ordering::Relaxed);
    }

    fn line(&self, what: &str) -> String {
        format!(
            "{what}: {} sent, {} accepted, {} answered 401, {} answered 429, {} other",
            self.sent.load(Ordering::Relaxed),
            self.accepted.load(Ordering::Relaxed),
            self.unauthorized.load(Ordering::Relaxed),
            self.limited.load(Ordering::Relaxed),
            self.other.load(Ordering::Relaxed),
        )
    }
}

/// An HTTP client whose connections come from `source` (a loopback
/// address of its own, so that per-address limits tell attackers apart).
fn client_from(source: &str) -> reqwest::Client {
    let source: IpAddr = source.parse().expect("address");
    reqwest::Client::builder()
        .local_address(source)
        .build()
        .expect("client")
}

/// Keeps `attack` going until `stop`.
fn attacker<F, Fut>(stop: Arc<AtomicBool>, mut attack: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            attack().await;
        }
    })
}

/// Reads a member's stream all through the flood (answering pings, as a
/// listening store does), collecting `(seq, alert id)` of its alerts until
/// `owed` (known once the flood is over) have come.
fn listen(
    mut stream: Stream,
    owed: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<(Vec<(i64, i64)>, Stream)> {
    tokio::spawn(async move {
        let mut ids = Vec::new();
        while (ids.len() as u64) < owed.load(Ordering::Relaxed) {
            match stream.next_within(Duration::from_millis(200)).await {
                Ok(Some(frame)) => ids.extend(frame.published()),
                Ok(None) => {}
                Err(ended) => panic!("a member's stream ended: {ended:?}"),
            }
        }
        (ids, stream)
    })
}

#[tokio::test]
async fn member_stores_get_every_alert_through_a_flood() {
    let seconds: u64 = std::env::var("P4P_FLOOD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let server = TestServer::start_with(&["--rate-limits", "on"]).await;
    let staff = server.staff_token("moderator");
    // Members (their pledges come from 127.0.0.1, within its allowance of
    // 10 an hour), all around Manhattan.
    let poster = server.member(&staff, "Midtown Gems", MANHATTAN, 25.0).await;
    let newark = server.member(&staff, "Newark Gold", NEWARK, 25.0).await;
    let brooklyn = server
        .member(&staff, "Brooklyn Rings", BROOKLYN, 25.0)
        .await;
    // A member whose token was stolen by the attackers.
    let stolen = server
        .member(&staff, "Stolen Token Jewelers", MANHATTAN, 25.0)
        .await;
    let owed_count = Arc::new(AtomicU64::new(u64::MAX));
    let mut listeners = Vec::new();
    for member in [&newark, &brooklyn] {
        let mut stream = server.stream(&member.token, Some(0)).await;
        hello_head(&stream.next().await);
        listeners.push(listen(stream, owed_count.clone()));
    }

    // The member posts 20 alerts over the flood, as a store would.
    let legit = 20u32;
    let legit_every = Duration::from_millis(seconds * 1000 / u64::from(legit));

    let stop = Arc::new(AtomicBool::new(false));
    let guesses = Arc::new(Tally::default());
    let spam = Arc::new(Tally::default());
    let pledges = Arc::new(Tally::default());
    let connects = Arc::new(Tally::default());
    let url = server.url.clone();
    let mut attackers = Vec::new();
    // Token guessing from 127.0.0.2, four at a time.
    for n in 0..4u64 {
        let (client, url, tally) = (client_from("127.0.0.2"), url.clone(), guesses.clone());
        let mut guess = n * 1_000_000_000;
        attackers.push(attacker(stop.clone(), move || {
            guess += 1;
            let request = client
                .get(format!("{url}/v1/me"))
                .bearer_auth(format!("p4p_guess{guess:032x}"));
            let tally = tally.clone();
            async move {
                if let Ok(response) = request.send().await {
                    tally.count(response.status().as_u16(), 200);
                }
            }
        }));
    }
    // Alert spam with the stolen token, from 127.0.0.3.
    {
        let (client, url, tally, token) = (
            client_from("127.0.0.3"),
            url.clone(),
            spam.clone(),
            stolen.token.clone(),
        );
        let mut n = 0;
        attackers.push(attacker(stop.clone(), move || {
            n += 1;
            let request = client
                .post(format!("{url}/v1/alerts"))
                .bearer_auth(&token)
                .json(&casing_at(&format!("spam {n}"), MANHATTAN, 25.0));
            let tally = tally.clone();
            async move {
                if let Ok(response) = request.send().await {
                    tally.count(response.status().as_u16(), 201);
                }
            }
        }));
    }
    // Pledge spam from 127.0.0.4.
    {
        let (client, url, tally) = (client_from("127.0.0.4"), url.clone(), pledges.clone());
        let mut n = 0;
        attackers.push(attacker(stop.clone(), move || {
            n += 1;
            let request = client.post(format!("{url}/v1/pledge")).json(&pledge_body(
                &format!("Fake Store {n}"),
                MANHATTAN,
                25.0,
            ));
            let tally = tally.clone();
            async move {
                if let Ok(response) = request.send().await {
                    tally.count(response.status().as_u16(), 201);
                }
            }
        }));
    }
    // Stream connections with the stolen token, each dropped at once.
    {
        let (tally, token) = (connects.clone(), stolen.token.clone());
        let server_url = server.url.clone();
        attackers.push(attacker(stop.clone(), move || {
            let (tally, token, server_url) = (tally.clone(), token.clone(), server_url.clone());
            async move {
                tally.count(connect_and_leave(&server_url, &token).await, 101);
            }
        }));
    }

    // Meanwhile, the member posts.
    let started = Instant::now();
    let member = server.api(Some(&poster.token));
    let mut posted = Vec::new();
    for n in 0..legit {
        let alert = member
            .post_alert(&casing_at(&format!("real casing {n}"), MANHATTAN, 25.0))
            .await;
        posted.push(id_of(&alert));
        tokio::time::sleep(legit_every).await;
    }
    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        attacker.await.expect("attacker");
    }
    let flood = started.elapsed();

    // Every member store got every published alert in its reach: the
    // member's 20 and what the stolen token got in before its limit.
    let spam_accepted = spam.accepted.load(Ordering::Relaxed);
    let owed = posted.len() + spam_accepted as usize;
    owed_count.store(owed as u64, Ordering::Relaxed);
    for listener in listeners {
        let (got, mut stream) = tokio::time::timeout(PATIENCE, listener)
            .await
            .expect("the members' alerts came")
            .expect("listener");
        let stream = &mut stream;
        let seqs: Vec<i64> = got.iter().map(|(seq, _)| *seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
        let ids: std::collections::BTreeSet<i64> = got.iter().map(|(_, id)| *id).collect();
        assert_eq!(ids.len(), owed, "each once");
        assert!(posted.iter().all(|id| ids.contains(id)), "every real alert");
        stream.assert_quiet(Duration::from_millis(300)).await;
    }
    // The limits held: at most the defaults' hourly allowances got
    // through, plus what refilled while the flood went on.
    let allowance = |per_hour: u64| per_hour + per_hour * flood.as_secs() / 3_600 + 1;
    assert!(guesses.unauthorized.load(Ordering::Relaxed) <= allowance(60));
    assert!(guesses.limited.load(Ordering::Relaxed) > 0);
    assert_eq!(guesses.accepted.load(Ordering::Relaxed), 0);
    assert!(spam_accepted <= allowance(30), "{spam_accepted}");
    assert!(pledges.accepted.load(Ordering::Relaxed) <= allowance(10));
    assert!(connects.accepted.load(Ordering::Relaxed) <= allowance(120));
    for tally in [&guesses, &spam, &pledges, &connects] {
        assert_eq!(tally.other.load(Ordering::Relaxed), 0, "only 2xx, 401, 429");
    }
    // The server is well, and only the attackers' addresses are held.
    assert_eq!(server.anonymous().get("/readyz").await.status, 200);
    assert_eq!(member.get("/v1/me").await.status, 200);
    println!(
        "flood of {:.1} s, rate limits at their defaults:\n  {}\n  {}\n  {}\n  {}\n  members: {} real alerts and {} spam alerts delivered to each of 2 stores, in order, once; none missing",
        flood.as_secs_f64(),
        guesses.line("token guesses (127.0.0.2)"),
        spam.line("alerts with a stolen token (127.0.0.3)"),
        pledges.line("pledges (127.0.0.4)"),
        connects.line("stream connections with the stolen token"),
        posted.len(),
        spam_accepted,
    );
}

/// Opens a stream and drops it at once; the HTTP status of the upgrade.
async fn connect_and_leave(url: &str, token: &str) -> u16 {
    match stream_at(url, token, None).await {
        Ok(stream) => {
            stream.close().await;
            101
        }
        Err(status) => status,
    }
}
