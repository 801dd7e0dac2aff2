//! How alerts and lists read for people: the alert block shared by
//! `p4p listen` and `p4p show`, and plain aligned tables.

use p4p_protocol::{Alert, Frame, Location, Timestamp};
use time::format_description::well_known::Rfc3339;

/// An RFC 3339 time in UTC, as the wire carries it.
pub fn time(at: Timestamp) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

/// `40.71280, -74.00600`.
pub fn place(location: Location) -> String {
    format!("{:.5}, {:.5}", location.lat, location.lon)
}

/// `25 km`, `3.2 km`.
pub fn km(distance: f64) -> String {
    if distance.fract() == 0.0 {
        format!("{distance:.0} km")
    } else {
        format!("{distance:.1} km")
    }
}

/// A stream frame as people read it; `None` for frames shown to nobody
/// (`hello`, unknown types).
pub fn frame(frame: &Frame) -> Option<String> {
    let text = match frame {
        Frame::Alert(event) => {
            let headline = format!("ALERT {}{}", event.alert.kind, away(event.distance_km));
            block(&headline, &alert_lines(&event.alert, Some(event.seq)))
        }
        Frame::Update(event) => {
            let headline = format!(
                "UPDATED #{} {}{}",
                event.alert.id,
                event.alert.kind,
                away(event.distance_km)
            );
            block(&headline, &alert_lines(&event.alert, Some(event.seq)))
        }
        Frame::Pending { seq, alert } => {
            let headline = format!("PENDING MODERATION #{} {}", alert.id, alert.kind);
            block(&headline, &alert_lines(alert, Some(*seq)))
        }
        Frame::Retract {
            alert_id, reason, ..
        } => format!("RETRACTED #{alert_id}{}", because(reason.as_deref())),
        Frame::Flag {
            alert_id,
            store_id,
            reason,
            ..
        } => format!(
            "FLAGGED #{alert_id} by store {store_id}{}",
            because(reason.as_deref())
        ),
        Frame::Hello(_) | Frame::Unknown => return None,
    };
    Some(text)
}

/// One alert in full, for `p4p show`.
pub fn alert_in_full(alert: &Alert) -> String {
    let mut lines = alert_lines(alert, None);
    let verified = if alert.verified {
        "verified by the association"
    } else {
        "not verified"
    };
    lines.push(field("Status", &format!("{}, {verified}", alert.status)));
    lines.push(field("Created", &time(alert.created_at)));
    lines.push(field("Updated", &time(alert.updated_at)));
    block(&format!("ALERT #{} {}", alert.id, alert.kind), &lines)
}

/// The lines under an alert's headline: what, when, where, who, from whom.
fn alert_lines(alert: &Alert, seq: Option<i64>) -> Vec<String> {
    let mut lines = vec![
        field("Title", &alert.title),
        field("Time", &time(alert.occurred_at)),
        field(
            "Place",
            &format!("{} (reach {})", place(alert.location), km(alert.radius_km)),
        ),
    ];
    if let Some(description) = alert.description.as_deref().filter(|text| !text.is_empty()) {
        lines.push(field("Details", description));
    }
    for suspect in &alert.suspects {
        lines.push(field("Suspect", &pairs(&suspect.fields())));
    }
    for vehicle in &alert.vehicles {
        lines.push(field("Vehicle", &pairs(&vehicle.fields())));
    }
    lines.push(field(
        "Store",
        &format!("{} (#{})", alert.store.name, alert.store.id),
    ));
    let id = match seq {
        Some(seq) => format!("#{}, seq {seq}", alert.id),
        None => format!("#{}", alert.id),
    };
    lines.push(field("Alert", &id));
    lines
}

const LABEL_WIDTH: usize = 10;

/// `  Label:    value`, with continuation lines of a multi-line value aligned.
fn field(label: &str, value: &str) -> String {
    let indent = " ".repeat(2 + LABEL_WIDTH);
    let mut text = format!("  {:<LABEL_WIDTH$}", format!("{label}:"));
    for (index, line) in value.lines().enumerate() {
        if index > 0 {
            text.push('\n');
            text.push_str(&indent);
        }
        text.push_str(line);
    }
    text
}

/// `sex: male; hair: short black`: the fields given, in the wire's order.
fn pairs(fields: &[(&'static str, &Option<String>)]) -> String {
    let given: Vec<String> = fields
        .iter()
        .filter_map(|(name, value)| value.as_deref().map(|value| format!("{name}: {value}")))
        .collect();
    if given.is_empty() {
        "(no description)".to_owned()
    } else {
        given.join("; ")
    }
}

fn block(headline: &str, lines: &[String]) -> String {
    let mut text = headline.to_owned();
    for line in lines {
        text.push('\n');
        text.push_str(line);
    }
    text
}

fn away(distance_km: Option<f64>) -> String {
    distance_km
        .map(|distance| format!(", {} away", km(distance)))
        .unwrap_or_default()
}

fn because(reason: Option<&str>) -> String {
    reason
        .filter(|reason| !reason.is_empty())
        .map(|reason| format!(": {reason}"))
        .unwrap_or_default()
}

/// Columns padded to their widest cell, headers first.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    table_lines(headers, rows).join("\n")
}

/// The lines of [`table`]: the header line, then one line per row, so that a
/// caller can put lines of its own under a row.
pub fn table_lines(headers: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|header| header.chars().count())
        .collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header_row: Vec<String> = headers.iter().map(|header| header.to_uppercase()).collect();
    std::iter::once(&header_row)
        .chain(rows)
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| {
                    let padding = width.saturating_sub(cell.chars().count());
                    format!("{cell}{}", " ".repeat(padding))
                })
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use p4p_protocol::{AlertFrame, AlertKind, AlertStatus, StoreRef, Suspect, Vehicle};
    use time::macros::datetime;

    fn casing_alert() -> Alert {
        Alert {
            id: 42,
            kind: AlertKind::Casing,
            status: AlertStatus::Published,
            title: "Two men casing showcases".to_owned(),
            description: Some("Watched the back room door.".to_owned()),
            occurred_at: datetime!(2026-11-24 15:04:05 UTC),
            location: Location {
                lat: 40.7128,
                lon: -74.006,
            },
            radius_km: 25.0,
            suspects: vec![Suspect {
                sex: Some("male".to_owned()),
                clothing: Some("red hoodie, dark jeans".to_owned()),
                ..Suspect::default()
            }],
            vehicles: vec![Vehicle {
                make: Some("Honda".to_owned()),
                plate: Some("ABC1234".to_owned()),
                ..Vehicle::default()
            }],
            store: StoreRef {
                id: 7,
                name: "Main Street Jewelers".to_owned(),
            },
            verified: false,
            version: 1,
            status_reason: None,
            created_at: datetime!(2026-11-24 15:06:00 UTC),
            updated_at: datetime!(2026-11-24 15:06:00 UTC),
        }
    }

    #[test]
    fn an_alert_frame_reads_as_a_block() {
        let frame = Frame::Alert(AlertFrame {
            changed: None,
            seq: 1235,
            distance_km: Some(3.2),
            alert: Box::new(casing_alert()),
        });
        let text = super::frame(&frame).expect("shown");
        assert!(text.starts_with("ALERT casing, 3.2 km away\n"), "{text}");
        assert!(
            text.contains("Title:    Two men casing showcases"),
            "{text}"
        );
        assert!(text.contains("Time:     2026-11-24T15:04:05Z"), "{text}");
        assert!(
            text.contains("Suspect:  sex: male; clothing: red hoodie, dark jeans"),
            "{text}"
        );
        assert!(
            text.contains("Vehicle:  make: Honda; plate: ABC1234"),
            "{text}"
        );
        assert!(
            text.contains("Store:    Main Street Jewelers (#7)"),
            "{text}"
        );
        assert!(text.contains("Alert:    #42, seq 1235"), "{text}");
    }

    #[test]
    fn retractions_and_flags_are_one_line() {
        let retract = Frame::Retract {
            seq: 1241,
            alert_id: 42,
            reason: Some("Duplicate of 41".to_owned()),
        };
        assert_eq!(
            super::frame(&retract).as_deref(),
            Some("RETRACTED #42: Duplicate of 41")
        );
        let flag = Frame::Flag {
            seq: 1243,
            alert_id: 42,
            store_id: 9,
            reason: Some("Wrong store".to_owned()),
        };
        assert_eq!(
            super::frame(&flag).as_deref(),
            Some("FLAGGED #42 by store 9: Wrong store")
        );
    }

    #[test]
    fn pending_alerts_are_marked_for_moderators() {
        let frame = Frame::Pending {
            seq: 1242,
            alert: Box::new(casing_alert()),
        };
        let text = super::frame(&frame).expect("shown");
        assert!(
            text.starts_with("PENDING MODERATION #42 casing\n"),
            "{text}"
        );
    }

    #[test]
    fn show_adds_status_and_dates() {
        let text = alert_in_full(&casing_alert());
        assert!(text.starts_with("ALERT #42 casing\n"), "{text}");
        assert!(text.contains("Status:   published, not verified"), "{text}");
        assert!(text.contains("Created:  2026-11-24T15:06:00Z"), "{text}");
    }

    #[test]
    fn tables_align_columns() {
        let text = table(
            &["id", "name"],
            &[
                vec!["1".to_owned(), "Main".to_owned()],
                vec!["12".to_owned(), "Gold & Co".to_owned()],
            ],
        );
        assert_eq!(text, "ID  NAME\n1   Main\n12  Gold & Co");
    }
}
