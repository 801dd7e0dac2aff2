//! Who receives an event: the one delivery rule, for live fanout and replay.
//!
//! API.md: a store at distance `d` from the alert receives it when
//! `d <= alert.radius_km` (the store is inside the alert's reach) or
//! `d <= store.radius_km` (the alert is inside the store's area of interest);
//! the alert's author receives it too.

use std::sync::Arc;

use super::place::Area;

/// What an event is, as a stream frame type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An alert became published.
    Alert,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Alert => "alert",
        }
    }

    pub fn parse(value: &str) -> Option<EventKind> {
        match value {
            "alert" => Some(EventKind::Alert),
            _ => None,
        }
    }
}

/// A committed event: one position in the network's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub seq: i64,
    pub kind: EventKind,
    pub alert_id: i64,
    /// The store that posted the alert.
    pub author: i64,
    /// The alert's place and radius at the time of the event.
    pub reach: Area,
    /// The frame's fields other than `type`, `seq` and `distance_km`, as
    /// one JSON object: serialized once, when the event is written.
    pub body: Arc<str>,
}

/// A store listening on the stream: who it is and where it looks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Listener {
    pub store_id: i64,
    pub interest: Area,
}

/// The distance in km from `listener` to the event's alert, if the listener
/// receives the event.
pub fn receives(event: &Event, listener: &Listener) -> Option<f64> {
    let distance = event.reach.center.distance_km(listener.interest.center);
    let in_reach = distance <= event.reach.radius.km();
    let in_interest = distance <= listener.interest.radius.km();
    (in_reach || in_interest || event.author == listener.store_id).then_some(distance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::place::{Place, RadiusKm};
    use p4p_protocol::Location;

    fn area(lat: f64, lon: f64, km: f64) -> Area {
        Area {
            center: Place::parse("location", Location { lat, lon }).unwrap(),
            radius: RadiusKm::parse("radius_km", km).unwrap(),
        }
    }

    fn alert_at(reach: Area) -> Event {
        Event {
            seq: 1,
            kind: EventKind::Alert,
            alert_id: 1,
            author: 1,
            reach,
            body: Arc::from("{}"),
        }
    }

    // Manhattan; Newark is ~14 km away, Philadelphia ~130 km, Boston ~306 km.
    const NYC: (f64, f64) = (40.7128, -74.0060);
    const NEWARK: (f64, f64) = (40.7357, -74.1724);
    const PHILADELPHIA: (f64, f64) = (39.9526, -75.1652);
    const BOSTON: (f64, f64) = (42.3601, -71.0589);

    fn listener(store_id: i64, at: (f64, f64), km: f64) -> Listener {
        Listener {
            store_id,
            interest: area(at.0, at.1, km),
        }
    }

    #[test]
    fn a_store_inside_the_alerts_reach_receives_it() {
        let event = alert_at(area(NYC.0, NYC.1, 25.0));
        let d = receives(&event, &listener(2, NEWARK, 1.0)).unwrap();
        assert!((d - 14.1).abs() < 0.5, "{d}");
    }

    #[test]
    fn a_store_whose_interest_covers_the_alert_receives_it() {
        let event = alert_at(area(NYC.0, NYC.1, 25.0));
        assert!(receives(&event, &listener(2, PHILADELPHIA, 50.0)).is_none());
        assert!(receives(&event, &listener(2, PHILADELPHIA, 140.0)).is_some());
    }

    #[test]
    fn a_store_out_of_both_gets_nothing() {
        let event = alert_at(area(NYC.0, NYC.1, 50.0));
        assert!(receives(&event, &listener(2, BOSTON, 100.0)).is_none());
    }

    #[test]
    fn the_author_always_receives_its_own_alert() {
        let event = alert_at(area(NYC.0, NYC.1, 0.5));
        assert!(receives(&event, &listener(1, BOSTON, 0.5)).is_some());
    }

    #[test]
    fn the_boundary_is_inclusive() {
        let store = listener(2, NEWARK, 0.5);
        let d = nyc_to_newark_km();
        assert!(receives(&alert_at(area(NYC.0, NYC.1, d + 1e-6)), &store).is_some());
        assert!(receives(&alert_at(area(NYC.0, NYC.1, d - 1e-3)), &store).is_none());
    }

    fn nyc_to_newark_km() -> f64 {
        area(NYC.0, NYC.1, 1.0)
            .center
            .distance_km(area(NEWARK.0, NEWARK.1, 1.0).center)
    }
}
