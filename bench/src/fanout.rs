//! Scenario 1: N streams, alerts at a fixed rate, every delivery checked
//! against brute force; p4p, the floor and NATS in turn on the same plan.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::alerts::Planned;
use crate::deliveries::{judge, Outcome, Recorder};
use crate::places::{recipients, Site};
use crate::process::Usage;
use crate::systems::Publisher;

/// The alerts of one phase, with their exact recipients.
pub struct Plan {
    pub alerts: Vec<Planned>,
    pub recipients: Vec<Vec<u32>>,
}

impl Plan {
    /// `count` alerts numbered from `first`, each by a random store among
    /// the first `streams`, at its own place, with its kind's radius.
    pub fn new(sites: &[Site], streams: usize, first: u32, count: usize, seed: u64) -> Plan {
        let mut rng = StdRng::seed_from_u64(seed);
        let alerts: Vec<Planned> = (0..count)
            .map(|k| {
                let author = rng.random_range(0..streams);
                let at = crate::places::near(sites[author], 3.0, &mut rng);
                Planned::random(first + k as u32, author, at, &mut rng)
            })
            .collect();
        let recipients = alerts
            .iter()
            .map(|a| recipients(&sites[..streams], a.author, a.at, a.radius_km()))
            .collect();
        Plan { alerts, recipients }
    }

    pub fn first(&self) -> u32 {
        self.alerts.first().map(|a| a.number).unwrap_or(0)
    }

    pub fn end(&self) -> u32 {
        self.first() + self.alerts.len() as u32
    }
}

/// What one phase showed.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub rate: f64,
    pub outcome: Outcome,
    pub publish_errors: u64,
    /// Alerts actually sent per second (the schedule may fall behind).
    pub alerts_per_s: f64,
    pub frames_per_s: f64,
    pub cpu_seconds: f64,
    /// CPU of the benchmark itself (clients and publisher) in the phase.
    pub harness_cpu_seconds: f64,
    /// The measured process's RSS once the phase's frames are delivered.
    pub rss_after_kib: u64,
    /// Streams that were closed (4008) and resumed with `since`.
    pub reconnects: u64,
    /// Frames subscribers received before their own filtering (NATS: whole cells).
    pub raw_frames: u64,
    pub closed_streams: u64,
}

/// Publishes `plan` at `rate` alerts/s (open loop: alert k leaves at k/rate
/// whatever the answers), waits for the deliveries, and judges them.
pub async fn run_phase(
    publisher: &Publisher,
    plan: &Plan,
    rate: f64,
    recorder: &Arc<Recorder>,
    usage: impl Fn() -> Usage,
) -> Phase {
    let before = usage();
    let harness_before = harness_cpu();
    let raw_before = recorder.raw_frames.load(Ordering::Relaxed);
    let delivered_before = recorder.delivery_count();
    let errors = Arc::new(AtomicU64::new(0));
    let mut sends = JoinSet::new();
    let start = Instant::now();
    for (k, alert) in plan.alerts.iter().enumerate() {
        tokio::time::sleep_until((start + Duration::from_secs_f64(k as f64 / rate)).into()).await;
        // Latency runs from the alert's scheduled moment: a busy harness
        // late in sending it is counted, not hidden.
        recorder.posting(alert.number);
        let (publisher, alert, to) = (publisher.clone(), alert.clone(), plan.recipients[k].clone());
        let errors = errors.clone();
        sends.spawn(async move {
            if let Err(error) = publisher.publish(&alert, &to).await {
                if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("publish failed: {error:#}");
                }
            }
        });
    }
    let sent_in = start.elapsed().as_secs_f64();
    while sends.join_next().await.is_some() {}
    let owed: usize = plan.recipients.iter().map(Vec::len).sum();
    settle(recorder, delivered_before + owed).await;
    let after = usage();
    let (deliveries, posted) = recorder.of(plan.first(), plan.end());
    let outcome = judge(plan.first(), &plan.recipients, &deliveries, &posted);
    Phase {
        rate,
        publish_errors: errors.load(Ordering::Relaxed),
        alerts_per_s: plan.alerts.len() as f64 / sent_in.max(1e-9),
        frames_per_s: outcome.delivered as f64 / outcome.span_seconds.max(1e-9),
        cpu_seconds: after.cpu_seconds - before.cpu_seconds,
        harness_cpu_seconds: harness_cpu() - harness_before,
        rss_after_kib: after.rss_kib,
        reconnects: recorder.reconnects.load(Ordering::Relaxed),
        raw_frames: recorder.raw_frames.load(Ordering::Relaxed) - raw_before,
        closed_streams: recorder.closed.load(Ordering::Relaxed),
        outcome,
    }
}

fn harness_cpu() -> f64 {
    crate::process::usage_of(std::process::id())
        .map(|u| u.cpu_seconds)
        .unwrap_or(0.0)
}

/// Waits until `target` deliveries are in, or nothing more arrives for
/// 10 s; then a little longer, so that extra deliveries are seen too.
async fn settle(recorder: &Recorder, target: usize) {
    let mut last = recorder.delivery_count();
    let mut quiet_since = Instant::now();
    while last < target && quiet_since.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = recorder.delivery_count();
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}
