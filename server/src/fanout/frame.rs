//! Stream frames, rendered from an event's body serialized once.

use crate::domain::delivery::{delivery, Event, EventKind, Listener};

/// Who a stream is for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Audience {
    /// A member store: filtered by the delivery rule and retention.
    Store(Listener),
    /// Association staff: every event.
    Staff,
}

/// The frame `audience` gets for `event`, if it gets one: the one function
/// both live fanout and replay use. Of alerts that happened before
/// `not_before` (unix seconds: retention), and of alerts whose content was
/// withdrawn, only `retract`s are sent, to stores and staff alike.
pub fn frame_for(event: &Event, audience: &Audience, not_before: i64) -> Option<String> {
    match audience {
        Audience::Store(listener) => delivery(event, listener, not_before)
            .map(|d| render(event, d.kind, Some(d.distance_km))),
        Audience::Staff => event
            .may_send(event.kind, not_before)
            .then(|| render(event, event.kind, None)),
    }
}

/// Why a store that an edit moved the alert away from gets `retract`.
const LEFT_YOUR_AREA: &str = "the alert moved out of your area";

/// `{"type":…,"seq":…,"distance_km":…,` followed by the body's fields; or,
/// for a store an update left behind, a plain `retract` frame.
pub(super) fn render(event: &Event, kind: EventKind, distance_km: Option<f64>) -> String {
    if kind == EventKind::Retract && event.kind != EventKind::Retract {
        return format!(
            "{{\"type\":\"retract\",\"seq\":{},\"alert_id\":{},\"reason\":\"{LEFT_YOUR_AREA}\"}}",
            event.seq, event.alert_id
        );
    }
    let fields = event.body.strip_prefix('{').unwrap_or(&event.body);
    let mut frame = String::with_capacity(event.body.len() + 64);
    frame.push_str("{\"type\":\"");
    frame.push_str(kind.as_str());
    frame.push_str("\",\"seq\":");
    frame.push_str(&event.seq.to_string());
    if let (Some(distance), EventKind::Alert | EventKind::Update) = (distance_km, kind) {
        // To the metre; Rust prints floats without exponents, valid JSON.
        frame.push_str(",\"distance_km\":");
        frame.push_str(&((distance * 1000.0).round() / 1000.0).to_string());
    }
    if fields != "}" {
        frame.push(',');
    }
    frame.push_str(fields);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::place::{Area, Place, RadiusKm};
    use p4p_protocol::Frame;
    use std::sync::Arc;

    fn event(body: &str) -> Event {
        Event {
            seq: 7,
            kind: EventKind::Alert,
            alert_id: 1,
            author: 1,
            reach: Area {
                center: Place::from_stored(40.0, -74.0),
                radius: RadiusKm::from_stored(25.0),
            },
            previous_reach: None,
            occurred_at: 0,
            body: Arc::from(body),
        }
    }

    #[test]
    fn frames_are_json_with_type_seq_and_distance_first() {
        let alert = r#"{"id":1,"kind":"casing","status":"published","title":"t","description":null,
            "occurred_at":"2026-11-24T15:04:05Z","location":{"lat":40.0,"lon":-74.0},"radius_km":25.0,
            "suspects":[],"vehicles":[],"store":{"id":1,"name":"s"},"verified":false,
            "created_at":"2026-11-24T15:04:05Z","updated_at":"2026-11-24T15:04:05Z"}"#;
        let text = render(
            &event(&format!("{{\"alert\":{alert}}}")),
            EventKind::Alert,
            Some(3.21049),
        );
        assert!(
            text.starts_with(r#"{"type":"alert","seq":7,"distance_km":3.21,"alert":{"#),
            "{text}"
        );
        match serde_json::from_str::<Frame>(&text).unwrap() {
            Frame::Alert(frame) => {
                assert_eq!(frame.seq, 7);
                assert_eq!(frame.distance_km, Some(3.21));
                assert_eq!(frame.alert.title, "t");
            }
            other => panic!("{other:?}"),
        }
        let staff = render(
            &event(&format!("{{\"alert\":{alert}}}")),
            EventKind::Alert,
            None,
        );
        assert!(!staff.contains("distance_km"));
        assert_eq!(
            render(&event("{}"), EventKind::Alert, None),
            r#"{"type":"alert","seq":7}"#
        );
        let left = render(&event("{}"), EventKind::Retract, Some(1.0));
        match serde_json::from_str::<Frame>(&left).unwrap() {
            Frame::Retract {
                seq: 7,
                alert_id: 1,
                reason: Some(_),
            } => {}
            other => panic!("{other:?}"),
        }
    }
}
