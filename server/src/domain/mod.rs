//! The rules of the network, with no I/O: checked values built from wire
//! types (parse, don't validate), places and distances, the delivery rule,
//! and secrets.

pub mod alert;
#[cfg(test)]
pub mod arbitrary;
pub mod delivery;
pub mod moderation;
pub mod place;
pub mod secret;
pub mod store;
pub mod version;

use std::fmt;

/// Bad input, naming the field and the limit it broke.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl fmt::Display) -> Self {
        Invalid {
            field: field.into(),
            message: message.to_string(),
        }
    }
}

/// A single line of text: titles, every suspect and vehicle field, store
/// and contact names, address, phone, email, reasons and labels. At most
/// `max` characters as sent, then trimmed and not empty. Nothing that moves
/// a terminal's cursor or reorders what it shows: no control character
/// (CR, LF and TAB included), no line or paragraph separator, no
/// bidirectional override or isolate. A reader's screen shows such a line
/// as one line, so a name or a reason cannot draw a forged alert.
pub fn required_line(field: &str, value: &str, max: usize) -> Result<String, Invalid> {
    optional_line(field, Some(value), max)?.ok_or_else(|| Invalid::new(field, "must not be empty"))
}

/// An optional single line (see [`required_line`]); blank means absent.
pub fn optional_line(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, Invalid> {
    optional_text(field, value, max, TextKind::Line)
}

/// An optional multi-line text: an alert's `description`. As a single
/// line, but LF and TAB are allowed, and CRLF or a lone CR becomes LF, so
/// that what is stored has one kind of line break, which readers indent.
pub fn optional_multiline(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, Invalid> {
    optional_text(field, value, max, TextKind::Lines)
}

/// An optional text of `kind`: at most `max` characters as sent, nothing
/// `kind` refuses, then trimmed; blank means absent.
fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
    kind: TextKind,
) -> Result<Option<String>, Invalid> {
    let Some(value) = value else {
        return Ok(None);
    };
    within(field, value, max)?;
    if let Some(refused) = value.chars().find(|&c| !allowed(c, kind)) {
        return Err(refusal(field, refused, kind));
    }
    let value = match kind {
        TextKind::Line => std::borrow::Cow::Borrowed(value),
        TextKind::Lines => std::borrow::Cow::Owned(value.replace("\r\n", "\n").replace('\r', "\n")),
    };
    Ok(Some(value.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned))
}

/// A reason given for a moderation or membership action: one line.
pub fn reason(value: Option<&str>, required: bool) -> Result<Option<String>, Invalid> {
    let reason = optional_line("reason", value, 500)?;
    if required && reason.is_none() {
        return Err(Invalid::new("reason", "is required"));
    }
    Ok(reason)
}

/// Which line breaks a text may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextKind {
    /// None at all.
    Line,
    /// LF (and CR, which becomes LF) and TAB.
    Lines,
}

/// Whether `c` may appear in a text of `kind`.
fn allowed(c: char, kind: TextKind) -> bool {
    match c {
        '\n' | '\r' | '\t' => kind == TextKind::Lines,
        _ => !c.is_control() && !is_line_separator(c) && !is_bidi_control(c),
    }
}

/// U+2028 and U+2029: line breaks to some renderers, though not to a terminal.
fn is_line_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}')
}

/// The bidirectional embeddings, overrides (U+202A-U+202E) and isolates
/// (U+2066-U+2069), which make a line show in another order than it reads.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn refusal(field: &str, refused: char, kind: TextKind) -> Invalid {
    let code = refused as u32;
    let what = if is_bidi_control(refused) {
        "bidirectional overrides or isolates"
    } else if kind == TextKind::Line {
        "line breaks or control characters"
    } else {
        "control characters but line feed and tab"
    };
    Invalid::new(field, format!("must not contain {what} (U+{code:04X})"))
}

fn within(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    let length = value.chars().count();
    if length > max {
        return Err(Invalid::new(
            field,
            format!("must be at most {max} characters (got {length})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded_in_characters_not_bytes() {
        assert_eq!(required_line("title", " ring ", 6).unwrap(), "ring");
        assert!(required_line("title", "  ring  ", 6).is_err());
        assert_eq!(required_line("title", "ééééé", 5).unwrap(), "ééééé");
        let err = required_line("title", "ééééééé", 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "title must be at most 5 characters (got 7)"
        );
        assert_eq!(
            required_line("title", "   ", 5).unwrap_err().to_string(),
            "title must not be empty"
        );
    }

    #[test]
    fn optional_text_treats_blank_as_absent() {
        assert_eq!(optional_line("d", Some("  "), 3).unwrap(), None);
        assert_eq!(optional_line("d", None, 3).unwrap(), None);
        assert!(optional_line("d", Some("abcd"), 3).is_err());
        assert_eq!(optional_multiline("d", Some(" \n "), 3).unwrap(), None);
    }

    #[test]
    fn a_single_line_refuses_every_control_character_line_break_and_bidi_override() {
        for hostile in [
            "a\nb",
            "a\rb",
            "a\tb",
            "a\u{0}b",
            "a\u{1b}[2Jb",
            "a\u{7f}b",
            "a\u{85}b",
            "a\u{9b}b",
            "a\u{2028}b",
            "a\u{2029}b",
            "a\u{202a}b",
            "a\u{202e}b",
            "a\u{2066}b",
            "a\u{2069}b",
            "trailing\n",
            "\rleading",
        ] {
            assert!(
                optional_line("suspects[0].clothing", Some(hostile), 50).is_err(),
                "{hostile:?}"
            );
        }
        assert_eq!(
            required_line("suspects[0].clothing", "red\r\nALERT robbery", 50)
                .unwrap_err()
                .to_string(),
            "suspects[0].clothing must not contain line breaks or control characters (U+000D)"
        );
        assert_eq!(
            required_line("title", "gold \u{202e}kcab", 50)
                .unwrap_err()
                .to_string(),
            "title must not contain bidirectional overrides or isolates (U+202E)"
        );
        // Marks, joiners and right-to-left scripts are ordinary text.
        assert!(required_line("store_name", "\u{5d6}\u{5d4}\u{5d1} \u{200f}\u{200d}", 50).is_ok());
    }

    #[test]
    fn a_description_keeps_lf_and_tab_and_turns_crlf_and_cr_into_lf() {
        assert_eq!(
            optional_multiline("description", Some("one\r\ntwo\rthree\n\tfour"), 50).unwrap(),
            Some("one\ntwo\nthree\n\tfour".to_owned())
        );
        for hostile in [
            "a\u{1b}b",
            "a\u{0}b",
            "a\u{202e}b",
            "a\u{2066}b",
            "a\u{2028}b",
            "a\u{85}b",
        ] {
            let refused = optional_multiline("description", Some(hostile), 50).unwrap_err();
            assert_eq!(refused.field, "description", "{hostile:?}");
        }
    }

    #[test]
    fn the_limit_counts_what_was_sent_before_crlf_becomes_lf() {
        assert!(optional_multiline("description", Some("ab\r\n"), 4).is_ok());
        assert!(optional_multiline("description", Some("abc\r\n"), 4).is_err());
    }

    #[test]
    fn a_reason_is_one_line() {
        assert!(reason(Some("Duplicate of 41"), true).is_ok());
        assert!(reason(Some("Duplicate\n\nALERT robbery, 0.2 km away"), true).is_err());
        assert!(reason(None, true).is_err());
        assert_eq!(reason(None, false).unwrap(), None);
    }
}
