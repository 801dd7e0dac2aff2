//! Scenarios 2 to 5: idle capacity, resume, history, posting alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{stream, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::alerts::{seen, Planned};
use crate::deliveries::{latency_histogram, Latency};
use crate::p4p::{Members, P4p};
use crate::places::{store_sites, Site};
use crate::systems::{connect_ws, hello, hello_head, source_address};

#[derive(Debug, Clone, Serialize)]
pub struct IdleStep {
    pub streams: usize,
    pub server_rss_kib: u64,
    pub rss_per_stream_kib: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Idle {
    pub baseline_rss_kib: u64,
    pub steps: Vec<IdleStep>,
    /// Why opening more stopped (the target reached, or the first refusal).
    pub stopped_by: String,
}

/// Scenario 2: opens idle streams in steps of `step` up to `max` (several
/// per store token when there are more streams than stores), reading the
/// server's RSS after each step.
pub async fn idle(server: &P4p, members: &Members, max: usize, step: usize) -> Idle {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = server.process.usage().rss_kib;
    let url = server.stream_url(None);
    let mut tasks = JoinSet::new();
    let mut steps = Vec::new();
    let mut open = 0;
    let mut stopped_by = format!("reached the target of {max} streams");
    'steps: while open < max {
        let upto = (open + step).min(max);
        let mut opened = stream::iter(open..upto)
            .map(|i| {
                let (url, token) = (url.clone(), members[i % members.len()].token.clone());
                async move {
                    let mut socket = connect_ws(&url, Some(&token), source_address(i)).await?;
                    hello(&mut socket).await?;
                    Ok::<_, anyhow::Error>(socket)
                }
            })
            .buffer_unordered(200);
        while let Some(socket) = opened.next().await {
            match socket {
                Ok(mut socket) => {
                    tasks.spawn(async move { while let Some(Ok(_)) = socket.next().await {} });
                    open += 1;
                }
                Err(error) => {
                    stopped_by = format!("at {open} streams: {error:#}");
                    break 'steps;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = server.process.usage().rss_kib;
        steps.push(IdleStep {
            streams: open,
            server_rss_kib: rss,
            rss_per_stream_kib: rss.saturating_sub(baseline) as f64 / open.max(1) as f64,
        });
        println!("  idle: {open} streams, server RSS {} MiB", rss / 1024);
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    Idle {
        baseline_rss_kib: baseline,
        steps,
        stopped_by,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Resume {
    pub missed_alerts: usize,
    pub received: usize,
    pub in_order: bool,
    pub duplicates: usize,
    pub seconds: f64,
    pub frames_per_s: f64,
}

/// Scenario 3: store 0 goes away, `count` alerts it is owed are posted,
/// then it resumes with `since` and the time until it has them all is taken.
pub async fn resume(
    server: &Arc<P4p>,
    members: &Members,
    sites: &[Site],
    count: usize,
) -> Result<Resume> {
    let me = &members[0];
    let mut socket =
        connect_ws(&server.stream_url(None), Some(&me.token), source_address(0)).await?;
    let head = hello_head(&hello(&mut socket).await?).context("hello without head")?;
    drop(socket);
    let mut rng = StdRng::seed_from_u64(3);
    let first = 1_000_000_000;
    let alerts: Vec<Planned> = (0..count)
        .map(|k| {
            let author = 1 + rng.random_range(0..members.len() - 1);
            let mut alert = Planned::random(first + k as u32, author, sites[0], &mut rng);
            alert.at = sites[0];
            alert
        })
        .collect();
    post_all(server, members, &alerts, 32).await?;
    let started = Instant::now();
    let mut socket = connect_ws(
        &server.stream_url(Some(head)),
        Some(&me.token),
        source_address(0),
    )
    .await?;
    let (mut received, mut duplicates, mut last_seq, mut in_order) = (0, 0, head, true);
    let mut got = vec![false; count];
    while received + duplicates < count {
        let message = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .context("resume stalled for 60 s")?;
        let Some(Ok(Message::Text(text))) = message else {
            if matches!(message, Some(Ok(_))) {
                continue;
            }
            bail!("stream ended during resume: {message:?}");
        };
        let Some(seen) = seen(text.as_str()) else {
            continue;
        };
        if let Some(seq) = seen.seq {
            in_order &= seq > last_seq;
            last_seq = seq;
        }
        match seen
            .number
            .checked_sub(first)
            .and_then(|n| got.get_mut(n as usize))
        {
            Some(slot) if !*slot => {
                *slot = true;
                received += 1;
            }
            _ => duplicates += 1,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Resume {
        missed_alerts: count,
        received,
        in_order,
        duplicates,
        seconds,
        frames_per_s: received as f64 / seconds,
    })
}

/// Posts `alerts` with `concurrency` requests in flight.
async fn post_all(
    server: &Arc<P4p>,
    members: &Members,
    alerts: &[Planned],
    concurrency: usize,
) -> Result<()> {
    let mut sent = stream::iter(alerts)
        .map(|alert| async move {
            server
                .send(
                    Some(&members[alert.author].token),
                    "/v1/alerts",
                    &alert.request(),
                    201,
                )
                .await
        })
        .buffer_unordered(concurrency);
    while let Some(sent) = sent.next().await {
        sent?;
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct Posting {
    pub database: String,
    pub clients: usize,
    pub seconds: f64,
    pub alerts: u64,
    pub errors: u64,
    pub alerts_per_s: f64,
    pub latency: Latency,
    pub cpu_seconds: f64,
}

/// Scenario 5: `clients` stores post back to back for `seconds`, nobody listening.
pub async fn posting(
    server: &Arc<P4p>,
    members: &Members,
    database: &str,
    seconds: f64,
) -> Posting {
    let sites = store_sites(members.len(), 5);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let errors = Arc::new(AtomicU64::new(0));
    let before = server.process.usage();
    let started = Instant::now();
    let mut clients = JoinSet::new();
    for (i, site) in sites.into_iter().enumerate() {
        let (server, members, errors) = (server.clone(), members.clone(), errors.clone());
        clients.spawn(async move {
            let mut rng = StdRng::seed_from_u64(i as u64);
            let mut histogram = latency_histogram();
            let mut number = (i as u32).wrapping_mul(1 << 20);
            while Instant::now() < deadline {
                let alert = Planned::random(number, i, site, &mut rng);
                number = number.wrapping_add(1);
                let sent = Instant::now();
                match server
                    .send(Some(&members[i].token), "/v1/alerts", &alert.request(), 201)
                    .await
                {
                    Ok(_) => {
                        let _ = histogram.record(sent.elapsed().as_micros().max(1) as u64);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            histogram
        });
    }
    let mut all = latency_histogram();
    while let Some(Ok(histogram)) = clients.join_next().await {
        let _ = all.add(histogram);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = server.process.usage();
    Posting {
        database: database.to_owned(),
        clients: members.len(),
        seconds: elapsed,
        alerts: all.len(),
        errors: errors.load(Ordering::Relaxed),
        alerts_per_s: all.len() as f64 / elapsed,
        latency: Latency::of(&all),
        cpu_seconds: after.cpu_seconds - before.cpu_seconds,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub alerts_in_database: usize,
    pub queries: usize,
    pub radius_km: f64,
    pub checked_against_brute_force: usize,
    pub latency: Latency,
    pub mean_results: f64,
}

/// What scenario 4 stores directly (the API would take hours to make a
/// million alerts): published alerts around the same cities, over the
/// last 300 days, by `authors`.
pub async fn fill_history(
    database_url: &str,
    count: usize,
    authors: &[i64],
) -> Result<Vec<(i64, Site, i64)>> {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    use std::str::FromStr;
    let mut connection = SqliteConnectOptions::from_str(database_url)?
        .connect()
        .await?;
    let sites = store_sites(count, 11);
    let mut rng = StdRng::seed_from_u64(12);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut placed = Vec::with_capacity(count);
    let mut tx = connection.begin().await?;
    let next_id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM alerts")
        .fetch_one(&mut *tx)
        .await?;
    for (k, site) in sites.into_iter().enumerate() {
        let planned = Planned::random(k as u32, 0, site, &mut rng);
        let author = authors[rng.random_range(0..authors.len())];
        let at = now - rng.random_range(0..300 * 86_400);
        let id = next_id + k as i64;
        let request = planned.request();
        sqlx::query(
            "INSERT INTO alerts (id, store_id, kind, status, title, description, occurred_at, lat, lon, radius_km, \
             suspects, vehicles, verified, created_at, updated_at, published_at) \
             VALUES (?, ?, ?, 'published', ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
        )
        .bind(id)
        .bind(author)
        .bind(planned.kind.as_str())
        .bind(crate::alerts::title(planned.number))
        .bind(request["description"].as_str().unwrap_or_default())
        .bind(at)
        .bind(site.lat)
        .bind(site.lon)
        .bind(planned.radius_km())
        .bind(request["suspects"].to_string())
        .bind(request["vehicles"].to_string())
        .bind(at)
        .bind(at)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        placed.push((id, site, at));
    }
    tx.commit().await?;
    connection.close().await?;
    Ok(placed)
}

/// Scenario 4: `GET /v1/alerts` near random store sites, one at a time.
pub async fn history(
    server: &P4p,
    token: &str,
    placed: &[(i64, Site, i64)],
    queries: usize,
    radius_km: f64,
    seed: u64,
) -> Result<History> {
    let points = store_sites(queries, seed);
    let mut histogram = latency_histogram();
    let mut results = 0usize;
    let mut checked = 0;
    for (q, at) in points.iter().enumerate() {
        let path = format!(
            "/v1/alerts?lat={}&lon={}&radius_km={radius_km}",
            at.lat, at.lon
        );
        let started = Instant::now();
        let page = server.get(token, &path).await?;
        let _ = histogram.record(started.elapsed().as_micros().max(1) as u64);
        let ids: Vec<i64> = page["alerts"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["id"].as_i64()).collect())
            .unwrap_or_default();
        results += ids.len();
        if q < 20 {
            // Newest first within the radius: the 50 largest ids of the brute-force set.
            let mut owed: Vec<i64> = placed
                .iter()
                .filter(|(_, site, _)| site.distance_km(*at) <= radius_km)
                .map(|(id, _, _)| *id)
                .collect();
            owed.sort_unstable_by(|a, b| b.cmp(a));
            owed.truncate(50);
            if owed != ids {
                bail!(
                    "history near {at:?}: the server gave {} alerts, brute force {}",
                    ids.len(),
                    owed.len()
                );
            }
            checked += 1;
        }
    }
    Ok(History {
        alerts_in_database: placed.len(),
        queries,
        radius_km,
        checked_against_brute_force: checked,
        latency: Latency::of(&histogram),
        mean_results: results as f64 / queries.max(1) as f64,
    })
}
