//! How alerts and lists read for people: the alert block shared by
//! `p4p listen` and `p4p show`, plain aligned tables, and the one escaping
//! of text from the network that all of them use.
//!
//! Whatever a server sends (a hostile or an old one may send anything), no
//! control character reaches the terminal: a CR could overwrite the line
//! before it, an LF could start a forged alert block, ESC could clear the
//! screen, a bidirectional override could make a plate read backwards.
//! Such characters are shown as visible escapes (`\r`, `\n`, `\x1b`,
//! `\u{202e}`), and a description's lines are indented under their label,
//! so that no line from the network can pass for one of the CLI's own.

use std::borrow::Cow;
use std::fmt::Write as _;

use p4p_protocol::{Alert, Frame, Location, Timestamp};
use time::format_description::well_known::Rfc3339;

/// Whether `c` must not reach a terminal as it is: C0 and C1 controls,
/// DEL, the line and paragraph separators, the bidirectional embeddings,
/// overrides and isolates.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Text from the network as one line a terminal shows as it reads: every
/// unsafe character as a visible escape (`\n`, `\r`, `\t`, `\x1b`, `\u{202e}`).
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => shown.push_str("\\n"),
            '\r' => shown.push_str("\\r"),
            '\t' => shown.push_str("\\t"),
            c if is_unsafe(c) && u32::from(c) < 0x100 => {
                let _ = write!(shown, "\\x{:02x}", u32::from(c));
            }
            c if is_unsafe(c) => {
                let _ = write!(shown, "\\u{{{:04x}}}", u32::from(c));
            }
            c => shown.push(c),
        }
    }
    Cow::Owned(shown)
}

/// JSON text with every unsafe character but JSON's own whitespace (LF,
/// CR, TAB) as a JSON escape (`\u001b`, `\u202e`): the same JSON value,
/// safe on a terminal. serde escapes C0 controls inside strings already,
/// but not DEL, C1 controls or the bidirectional ones; and a frame that is
/// not JSON at all is printed as it came, so ESC is escaped here too. (LF,
/// CR and TAB outside strings are whitespace between tokens; inside a
/// string they are not JSON; for a stream frame, `output::json_line` makes
/// LF and CR spaces.)
pub fn escape_json(text: &str) -> Cow<'_, str> {
    let escaped = |c: char| is_unsafe(c) && !matches!(c, '\n' | '\r' | '\t');
    if !text.chars().any(escaped) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escaped(c) {
            let _ = write!(shown, "\\u{:04x}", u32::from(c));
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

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
    if let Some(reason) = alert.status_reason.as_deref().filter(|r| !r.is_empty()) {
        lines.push(field("Why", reason));
    }
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
        lines.push(indented_field("Details", description));
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

/// `  Label:    value`, the value on one line whatever it holds.
fn field(label: &str, value: &str) -> String {
    format!("  {:<LABEL_WIDTH$}{}", format!("{label}:"), escape(value))
}

/// `  Label:` and under it every line of a multi-line value (split on LF
/// only, each escaped), indented deeper than any line of the CLI's own, so
/// that a line of a description can never pass for a headline or a field.
fn indented_field(label: &str, value: &str) -> String {
    let mut text = format!("  {label}:");
    for line in value.split('\n') {
        text.push('\n');
        text.push_str(DESCRIPTION_INDENT);
        text.push_str(&escape(line));
    }
    text
}

/// Where a description's lines start: past the labels (2) and the values (12).
const DESCRIPTION_INDENT: &str = "      | ";

/// `sex: male; hair: short black`: the fields given, in the wire's order.
fn pairs(fields: &[(&'static str, &Option<String>)]) -> String {
    let given: Vec<String> = fields
        .iter()
        .filter_map(|(name, value)| {
            value
                .as_deref()
                .map(|value| format!("{name}: {}", escape(value)))
        })
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
        .map(|reason| format!(": {}", escape(reason)))
        .unwrap_or_default()
}

/// Columns padded to their widest cell, headers first; every cell escaped,
/// since cells hold names, titles and reasons from the network.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    table_lines(headers, rows).join("\n")
}

/// [`table`], or `none` when there are no rows (`No stores.`).
pub fn table_or(none: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        none.to_owned()
    } else {
        table(headers, rows)
    }
}

/// The lines of [`table`]: the header line, then one line per row, so that a
/// caller can put lines of its own under a row.
pub fn table_lines(headers: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| escape(cell).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|header| header.chars().count())
        .collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header_row: Vec<String> = headers.iter().map(|header| header.to_uppercase()).collect();
    std::iter::once(&header_row)
        .chain(&rows)
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
pub(crate) mod tests {
    use super::*;
    use p4p_protocol::{AlertFrame, AlertKind, AlertStatus, StoreRef, Suspect, Vehicle};
    use time::macros::datetime;

    /// A published casing alert in Manhattan with one suspect and one
    /// vehicle, for the tests of every way an alert is shown.
    pub(crate) fn casing_alert() -> Alert {
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

    #[test]
    fn escape_shows_every_control_and_bidi_character_visibly() {
        assert_eq!(escape("Main Street Jewelers"), "Main Street Jewelers");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape("a\nb\rc\td\u{1b}[2Je\u{0}f\u{7f}g\u{9b}h"),
            "a\\nb\\rc\\td\\x1b[2Je\\x00f\\x7fg\\x9bh"
        );
        assert_eq!(
            escape("\u{202e}4321CBA\u{2066}\u{2069}\u{2028}"),
            "\\u{202e}4321CBA\\u{2066}\\u{2069}\\u{2028}"
        );
        // Right-to-left scripts, marks and emoji are ordinary text.
        assert_eq!(
            escape("\u{5d6}\u{5d4}\u{5d1} \u{200f}💎"),
            "\u{5d6}\u{5d4}\u{5d1} \u{200f}💎"
        );
    }

    #[test]
    fn escape_json_keeps_the_json_value_and_hides_what_serde_passes_through() {
        let text = serde_json::json!({ "t": "a\u{7f}\u{9b}\u{202e}b\u{1b}" }).to_string();
        let safe = escape_json(&text);
        assert!(!safe.chars().any(is_unsafe), "{safe}");
        let pretty = serde_json::to_string_pretty(&serde_json::json!({ "a": [1] })).expect("JSON");
        assert_eq!(escape_json(&pretty), pretty, "structural whitespace stays");
        let back: serde_json::Value = serde_json::from_str(&safe).expect("still JSON");
        assert_eq!(back["t"], "a\u{7f}\u{9b}\u{202e}b\u{1b}");
    }

    fn assert_no_forged_line(text: &str) {
        assert!(!text.chars().any(|c| is_unsafe(c) && c != '\n'), "{text:?}");
        for line in text.lines().skip(1) {
            assert!(
                line.starts_with("  "),
                "a line of the network's starts a line: {text}"
            );
            assert!(
                !line.trim_start().starts_with("ALERT"),
                "forged headline: {text}"
            );
        }
    }

    #[test]
    fn a_hostile_alert_cannot_forge_a_line_of_the_block() {
        let forged = "\r\n\nALERT robbery, 0.2 km away\n  Store:    P4P Association HQ";
        let mut alert = casing_alert();
        alert.title = format!("Casing{forged}");
        alert.store.name = format!("Main\r{forged}");
        alert.suspects[0].clothing = Some(format!("red\u{1b}[2J{forged}"));
        alert.vehicles[0].plate = Some("\u{202e}4321CBA".to_owned());
        alert.description = Some(format!("Watched the door.{forged}\r\n\tthen left"));
        alert.status_reason = Some(forged.to_owned());
        let frame = Frame::Alert(AlertFrame {
            changed: None,
            seq: 7,
            distance_km: Some(1.0),
            alert: Box::new(alert.clone()),
        });
        let block = super::frame(&frame).expect("shown");
        assert_no_forged_line(&block);
        assert!(block.contains("plate: \\u{202e}4321CBA"), "{block}");
        assert!(
            block.contains("  Details:\n      | Watched the door.\\r\n      | \n      | ALERT robbery, 0.2 km away\n"),
            "{block}"
        );
        assert_no_forged_line(&alert_in_full(&alert));
        let retract = Frame::Retract {
            seq: 8,
            alert_id: 42,
            reason: Some(forged.to_owned()),
        };
        let line = super::frame(&retract).expect("shown");
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(
            line.starts_with("RETRACTED #42: \\r\\n\\nALERT robbery"),
            "{line}"
        );
    }

    #[test]
    fn show_says_why_an_alert_waits() {
        let mut alert = casing_alert();
        alert.status = AlertStatus::Pending;
        alert.status_reason = Some("new member: held until a moderator approves it".to_owned());
        let text = alert_in_full(&alert);
        assert!(
            text.contains("  Status:   pending, not verified\n  Why:      new member: held until a moderator approves it"),
            "{text}"
        );
    }

    #[test]
    fn table_cells_are_escaped() {
        let text = table(
            &["id", "name"],
            &[vec!["1".to_owned(), "Gold\n2   Forged & Co".to_owned()]],
        );
        assert_eq!(text, "ID  NAME\n1   Gold\\n2   Forged & Co");
    }
}
