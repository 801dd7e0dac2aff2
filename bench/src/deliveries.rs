//! What subscribers received, and how it compares with what they were owed.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

/// One frame received by one subscriber.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    pub alert: u32,
    pub store: u32,
    pub at_us: u64,
}

/// Shared by every subscriber of a run: when each alert was posted, what
/// each subscriber received, and when.
pub struct Recorder {
    pub epoch: Instant,
    deliveries: Mutex<Vec<Delivery>>,
    posted_us: Mutex<Vec<u64>>,
    /// Frames received before any filtering (NATS subscribers receive whole cells).
    pub raw_frames: AtomicU64,
    /// Streams the server closed while they were meant to stay open.
    pub closed: AtomicU64,
    /// Streams that resumed with `since` after the server closed them.
    pub reconnects: AtomicU64,
}

pub const NOT_POSTED: u64 = u64::MAX;

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            epoch: Instant::now(),
            deliveries: Mutex::new(Vec::new()),
            posted_us: Mutex::new(Vec::new()),
            raw_frames: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        })
    }

    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    pub fn received(&self, alert: u32, store: u32) {
        let at_us = self.now_us();
        if let Ok(mut deliveries) = self.deliveries.lock() {
            deliveries.push(Delivery {
                alert,
                store,
                at_us,
            });
        }
    }

    /// Marks alert `number` as posted now (just before the request leaves).
    pub fn posting(&self, number: u32) {
        let now = self.now_us();
        if let Ok(mut posted) = self.posted_us.lock() {
            let index = number as usize;
            if posted.len() <= index {
                posted.resize(index + 1, NOT_POSTED);
            }
            posted[index] = now;
        }
    }

    pub fn delivery_count(&self) -> usize {
        self.deliveries.lock().map(|d| d.len()).unwrap_or(0)
    }

    /// Deliveries of alerts `first..end`, and their post times.
    pub fn of(&self, first: u32, end: u32) -> (Vec<Delivery>, Vec<u64>) {
        let deliveries = self
            .deliveries
            .lock()
            .map(|d| {
                d.iter()
                    .filter(|x| x.alert >= first && x.alert < end)
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        let posted = self
            .posted_us
            .lock()
            .map(|p| {
                (first..end)
                    .map(|n| p.get(n as usize).copied().unwrap_or(NOT_POSTED))
                    .collect()
            })
            .unwrap_or_default();
        (deliveries, posted)
    }
}

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Latencies in microseconds: 1 µs to an hour at 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl Latency {
    /// The figures of a [`latency_histogram`].
    pub fn of(histogram: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// How one set of alerts went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub alerts: usize,
    pub expected: usize,
    pub delivered: usize,
    pub missing: usize,
    pub unexpected: usize,
    pub latency: Latency,
    /// From the first post to the last delivery.
    pub span_seconds: f64,
    /// Latencies (ms) at 1..=1000 per mille, for the plot.
    #[serde(skip)]
    pub quantiles_ms: Vec<(f64, f64)>,
}

/// Compares deliveries of alerts `first..` with the exact recipients
/// (`expected[i]` for alert `first + i`, sorted store indexes).
pub fn judge(
    first: u32,
    expected: &[Vec<u32>],
    deliveries: &[Delivery],
    posted: &[u64],
) -> Outcome {
    let mut received: Vec<Vec<u32>> = vec![Vec::new(); expected.len()];
    let mut histogram = latency_histogram();
    let mut unexpected = 0;
    let mut last_us = 0;
    for d in deliveries {
        let index = (d.alert - first) as usize;
        let Some(owed) = received.get_mut(index) else {
            unexpected += 1;
            continue;
        };
        owed.push(d.store);
        last_us = last_us.max(d.at_us);
        if let Some(&sent) = posted.get(index).filter(|&&t| t != NOT_POSTED) {
            let _ = histogram.record(d.at_us.saturating_sub(sent).max(1));
        }
    }
    let mut missing = 0;
    for (got, owed) in received.iter_mut().zip(expected) {
        got.sort_unstable();
        let (m, u) = compare_sorted(owed, got);
        missing += m;
        unexpected += u;
    }
    let first_post = posted
        .iter()
        .copied()
        .filter(|&t| t != NOT_POSTED)
        .min()
        .unwrap_or(0);
    let ms = |us: u64| us as f64 / 1000.0;
    Outcome {
        alerts: expected.len(),
        expected: expected.iter().map(Vec::len).sum(),
        delivered: deliveries.len(),
        missing,
        unexpected,
        latency: Latency::of(&histogram),
        span_seconds: last_us.saturating_sub(first_post) as f64 / 1e6,
        quantiles_ms: (1..=1000)
            .map(|q| {
                let q = q as f64 / 1000.0;
                (q, ms(histogram.value_at_quantile(q)))
            })
            .collect(),
    }
}

/// (missing, unexpected) between what was owed and what arrived; a store
/// that received an alert twice counts one unexpected delivery.
pub fn compare_sorted(owed: &[u32], got: &[u32]) -> (usize, usize) {
    let (mut i, mut j, mut missing, mut unexpected) = (0, 0, 0, 0);
    while i < owed.len() || j < got.len() {
        match (owed.get(i), got.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                missing += 1;
                i += 1;
            }
            (Some(_), None) => {
                missing += 1;
                i += 1;
            }
            _ => {
                unexpected += 1;
                j += 1;
            }
        }
    }
    (missing, unexpected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_unexpected_and_duplicates_are_counted() {
        assert_eq!(compare_sorted(&[1, 2, 3], &[1, 2, 3]), (0, 0));
        assert_eq!(compare_sorted(&[1, 2, 3], &[1, 3]), (1, 0));
        assert_eq!(compare_sorted(&[1, 3], &[1, 2, 3]), (0, 1));
        assert_eq!(compare_sorted(&[1, 3], &[1, 1, 3]), (0, 1));
        assert_eq!(compare_sorted(&[], &[4]), (0, 1));
        assert_eq!(compare_sorted(&[4], &[]), (1, 0));
    }

    #[test]
    fn judging_a_run() {
        let expected = vec![vec![0, 1], vec![2]];
        let deliveries = [
            Delivery {
                alert: 10,
                store: 0,
                at_us: 1_500,
            },
            Delivery {
                alert: 10,
                store: 1,
                at_us: 2_000,
            },
            Delivery {
                alert: 11,
                store: 3,
                at_us: 3_000,
            },
        ];
        let outcome = judge(10, &expected, &deliveries, &[1_000, 2_000]);
        assert_eq!((outcome.missing, outcome.unexpected), (1, 1));
        assert_eq!(outcome.delivered, 3);
        assert!(outcome.latency.max_ms >= 0.99 && outcome.latency.max_ms <= 1.01);
    }
}
