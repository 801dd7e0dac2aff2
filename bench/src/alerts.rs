//! The alerts the benchmark posts, and the frames the references carry.
//!
//! Every alert's title carries its number (`bench #17`), so a subscriber of
//! any of the three systems can tell which alert a frame is, and the frame
//! the references send is the frame p4p would send: same shape, same size.

use p4p_protocol::AlertKind;
use rand::rngs::StdRng;
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::places::Site;

const KINDS: [AlertKind; 6] = [
    AlertKind::Casing,
    AlertKind::SuspiciousVehicle,
    AlertKind::Burglary,
    AlertKind::DistractionTheft,
    AlertKind::GrabAndRun,
    AlertKind::Robbery,
];

/// One alert to post: who posts it, where, of what kind.
#[derive(Debug, Clone)]
pub struct Planned {
    pub number: u32,
    pub author: usize,
    pub at: Site,
    pub kind: AlertKind,
}

impl Planned {
    pub fn random(number: u32, author: usize, at: Site, rng: &mut StdRng) -> Planned {
        let kind = KINDS[rng.random_range(0..KINDS.len())];
        Planned {
            number,
            author,
            at,
            kind,
        }
    }

    /// The radius the server gives it: the default of its kind.
    pub fn radius_km(&self) -> f64 {
        self.kind.default_radius_km()
    }

    /// The body of `POST /v1/alerts` (no radius: the kind's default applies).
    pub fn request(&self) -> Value {
        json!({
            "kind": self.kind,
            "title": title(self.number),
            "description": "Two men asked to see three high-end watches, one watched the back room door while the other kept the clerk busy; left north on foot toward a silver sedan.",
            "location": {"lat": self.at.lat, "lon": self.at.lon},
            "suspects": [{"sex": "male", "age": "30s", "height": "6 ft", "build": "heavy",
                "hair": "short black", "clothing": "red hoodie, dark jeans",
                "shoes": "white sneakers", "marks": "tattoo on left hand", "notes": null}],
            "vehicles": [{"make": "Honda", "model": "Civic", "color": "silver",
                "plate": "ABC1234", "plate_region": "NY", "notes": null}],
        })
    }

    /// The frame p4p would send for it, for the references to carry.
    pub fn frame(&self, author_id: i64) -> String {
        let mut alert = self.request();
        alert["id"] = json!(self.number);
        alert["status"] = json!("published");
        alert["radius_km"] = json!(self.radius_km());
        alert["occurred_at"] = json!("2026-11-24T15:04:05Z");
        alert["created_at"] = json!("2026-11-24T15:04:05Z");
        alert["updated_at"] = json!("2026-11-24T15:04:05Z");
        alert["verified"] = json!(false);
        alert["store"] = json!({"id": author_id, "name": format!("Bench store {author_id}")});
        json!({"type": "alert", "seq": self.number, "distance_km": 0.0, "alert": alert}).to_string()
    }
}

pub fn title(number: u32) -> String {
    format!("bench #{number}")
}

#[derive(Deserialize)]
struct FrameHead {
    #[serde(rename = "type")]
    kind: String,
    seq: Option<i64>,
    alert: Option<AlertHead>,
}

#[derive(Deserialize)]
struct AlertHead {
    title: String,
    location: Option<p4p_protocol::Location>,
    radius_km: Option<f64>,
    store: Option<StoreHead>,
}

#[derive(Deserialize)]
struct StoreHead {
    id: i64,
}

/// What a subscriber needs of a frame.
pub struct Seen {
    pub number: u32,
    pub seq: Option<i64>,
    pub at: Option<Site>,
    pub radius_km: Option<f64>,
    /// The author's store id as the frame gives it.
    pub author: Option<i64>,
}

/// The alert a frame announces, if it is an `alert` frame of this benchmark.
pub fn seen(text: &str) -> Option<Seen> {
    let head: FrameHead = serde_json::from_str(text).ok()?;
    if head.kind != "alert" {
        return None;
    }
    let alert = head.alert?;
    let number = alert.title.strip_prefix("bench #")?.parse().ok()?;
    Some(Seen {
        number,
        seq: head.seq,
        at: alert.location.map(|l| Site {
            lat: l.lat,
            lon: l.lon,
        }),
        radius_km: alert.radius_km,
        author: alert.store.map(|s| s.id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_frame_names_its_alert() {
        let mut rng = StdRng::seed_from_u64(1);
        let planned = Planned::random(
            42,
            0,
            Site {
                lat: 40.7,
                lon: -74.0,
            },
            &mut rng,
        );
        let seen = seen(&planned.frame(7)).expect("an alert frame");
        assert_eq!(seen.number, 42);
        assert_eq!(seen.radius_km, Some(planned.radius_km()));
        assert!(super::seen(r#"{"type":"hello","head":3}"#).is_none());
    }
}
