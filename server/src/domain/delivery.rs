//! Who receives an event: the one delivery rule, for live fanout and replay.
//!
//! API.md: a store at distance `d` from the alert receives it when
//! `d <= alert.radius_km` (the store is inside the alert's reach) or
//! `d <= store.radius_km` (the alert is inside the store's area of interest);
//! the alert's author receives it too.

use std::sync::Arc;

use super::place::Area;

/// What an event is: the frame type staff see it as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An alert became published (posted, or approved).
    Alert,
    /// A published alert changed (edited, verified); it may have moved.
    Update,
    /// A published alert was withdrawn (retracted, or held after flags).
    Retract,
    /// Staff only: an alert awaits moderation.
    Pending,
    /// Staff only: a store flagged an alert.
    Flag,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Alert => "alert",
            EventKind::Update => "update",
            EventKind::Retract => "retract",
            EventKind::Pending => "pending",
            EventKind::Flag => "flag",
        }
    }

    pub fn parse(value: &str) -> Option<EventKind> {
        [
            EventKind::Alert,
            EventKind::Update,
            EventKind::Retract,
            EventKind::Pending,
            EventKind::Flag,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == value)
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
    /// The alert's place and radius after the event.
    pub reach: Area,
    /// Its place and radius before, when an update moved it.
    pub previous_reach: Option<Area>,
    /// When the alert's incident happened (unix seconds): retention.
    pub occurred_at: i64,
    /// The frame's fields other than `type`, `seq` and `distance_km`, as
    /// one JSON object: serialized once, when the event is written, and
    /// rewritten when its alert changes (the alert's current version), or
    /// emptied when the alert is withdrawn.
    pub body: Arc<str>,
}

impl Event {
    /// Whether its content was withdrawn: the alert is no longer in the
    /// status this event showed it in (rejected, retracted, held, erased).
    pub fn withdrawn(&self) -> bool {
        self.body.is_empty()
    }

    /// Whether a frame of `kind` for this event may still be sent: a
    /// `retract` always (clients that showed the alert drop it); anything
    /// else only while its content stands and its alert is within
    /// retention (`not_before`, unix seconds).
    pub fn may_send(&self, kind: EventKind, not_before: i64) -> bool {
        kind == EventKind::Retract || (!self.withdrawn() && self.occurred_at >= not_before)
    }
}

/// A store listening on the stream: who it is and where it looks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Listener {
    pub store_id: i64,
    pub interest: Area,
}

/// What a store receives for an event: the frame type and its distance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delivery {
    pub kind: EventKind,
    pub distance_km: f64,
}

/// What `listener` receives for `event`, if anything. Of alerts older than
/// `not_before` (unix seconds, the retention cut-off), and of alerts whose
/// content was withdrawn, only `retract`s reach a store.
///
/// An update that moved the alert is an `alert` to stores it now reaches
/// for the first time and a `retract` to stores it no longer reaches.
pub fn delivery(event: &Event, listener: &Listener, not_before: i64) -> Option<Delivery> {
    let distance_km = event.reach.center.distance_km(listener.interest.center);
    let now_reached = reaches(event, event.reach, listener);
    let kind = match event.kind {
        EventKind::Pending | EventKind::Flag => return None,
        EventKind::Alert | EventKind::Retract => now_reached.then_some(event.kind)?,
        EventKind::Update => {
            let was_reached = event
                .previous_reach
                .map_or(now_reached, |before| reaches(event, before, listener));
            match (was_reached, now_reached) {
                (true, true) => EventKind::Update,
                (false, true) => EventKind::Alert,
                (true, false) => EventKind::Retract,
                (false, false) => return None,
            }
        }
    };
    event
        .may_send(kind, not_before)
        .then_some(Delivery { kind, distance_km })
}

/// The rule of API.md for an alert covering `reach`.
fn reaches(event: &Event, reach: Area, listener: &Listener) -> bool {
    let distance = reach.center.distance_km(listener.interest.center);
    distance <= reach.radius.km()
        || distance <= listener.interest.radius.km()
        || event.author == listener.store_id
}

/// The distance in km from `listener` to the event's alert, if the listener
/// receives the event at all, whatever the alert's age (for tests).
#[cfg(test)]
pub fn receives(event: &Event, listener: &Listener) -> Option<f64> {
    delivery(event, listener, i64::MIN).map(|d| d.distance_km)
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
            previous_reach: None,
            occurred_at: 1_000,
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

    fn kind_for(event: &Event, store: &Listener) -> Option<EventKind> {
        delivery(event, store, 0).map(|d| d.kind)
    }

    #[test]
    fn a_moved_alert_is_new_to_stores_it_now_reaches_and_retracted_from_those_it_left() {
        let before = area(NYC.0, NYC.1, 25.0);
        let after = area(PHILADELPHIA.0, PHILADELPHIA.1, 25.0);
        let moved = Event {
            kind: EventKind::Update,
            previous_reach: Some(before),
            ..alert_at(after)
        };
        assert_eq!(
            kind_for(&moved, &listener(2, NEWARK, 1.0)),
            Some(EventKind::Retract)
        );
        assert_eq!(
            kind_for(&moved, &listener(3, PHILADELPHIA, 1.0)),
            Some(EventKind::Alert)
        );
        assert_eq!(kind_for(&moved, &listener(4, BOSTON, 1.0)), None);
        assert_eq!(
            kind_for(&moved, &listener(1, BOSTON, 1.0)),
            Some(EventKind::Update),
            "the author"
        );
        let edited = Event {
            kind: EventKind::Update,
            ..alert_at(before)
        };
        assert_eq!(
            kind_for(&edited, &listener(2, NEWARK, 1.0)),
            Some(EventKind::Update)
        );
    }

    #[test]
    fn staff_only_events_and_expired_alerts_reach_no_store() {
        let here = listener(2, NEWARK, 50.0);
        for kind in [EventKind::Pending, EventKind::Flag] {
            assert_eq!(
                kind_for(
                    &Event {
                        kind,
                        ..alert_at(area(NYC.0, NYC.1, 25.0))
                    },
                    &here
                ),
                None
            );
        }
        let old = alert_at(area(NYC.0, NYC.1, 25.0));
        assert!(delivery(&old, &here, 999).is_some());
        assert!(delivery(&old, &here, 1_001).is_none());
        let retract = Event {
            kind: EventKind::Retract,
            ..alert_at(area(NYC.0, NYC.1, 25.0))
        };
        assert_eq!(kind_for(&retract, &here), Some(EventKind::Retract));
        assert!(
            delivery(&retract, &here, 1_001).is_some(),
            "retracts of old alerts still go out"
        );
    }

    #[test]
    fn withdrawn_content_reaches_no_one_but_its_retract_does() {
        let here = listener(2, NEWARK, 50.0);
        let withdrawn = |kind| Event {
            kind,
            body: Arc::from(""),
            ..alert_at(area(NYC.0, NYC.1, 25.0))
        };
        for kind in [EventKind::Alert, EventKind::Update] {
            assert_eq!(kind_for(&withdrawn(kind), &here), None, "{kind:?}");
        }
        let moved_away = Event {
            previous_reach: Some(area(NEWARK.0, NEWARK.1, 25.0)),
            ..withdrawn(EventKind::Update)
        };
        let far = listener(3, NEWARK, 0.5);
        assert_eq!(kind_for(&moved_away, &far), None);
        assert_eq!(
            kind_for(
                &Event {
                    reach: area(BOSTON.0, BOSTON.1, 0.5),
                    ..moved_away
                },
                &far
            ),
            Some(EventKind::Retract)
        );
        assert_eq!(
            kind_for(&withdrawn(EventKind::Retract), &here),
            Some(EventKind::Retract)
        );
    }
}
