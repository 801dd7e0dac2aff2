//! Strategies for the property tests of the domain: hostile input of every
//! shape (text of any length and character, numbers including NaN and the
//! infinities, JSON values of any type in any field), weighted towards the
//! limits so that both sides of each limit are tried often.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::is_bidi_control;

/// How many cases each property runs: enough to cross every limit many
/// times, few enough that `cargo test` stays quick in a debug build.
pub const CASES: u32 = 256;

pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        // Failures are reported with the case; no file is written beside the code.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One character of a text: mostly letters, often blanks and multi-byte
/// ones, sometimes anything at all.
fn character() -> impl Strategy<Value = char> {
    prop_oneof![
        12 => proptest::char::range('a', 'z'),
        2 => prop_oneof![Just(' '), Just('\t'), Just('\n'), Just('\r'), Just('\u{a0}')],
        2 => prop_oneof![Just('é'), Just('日'), Just('💎'), Just('\u{200b}'), Just('\u{202e}'), Just('\u{2066}')],
        1 => any::<char>(),
    ]
}

/// A character at the start of a text: blanks (trimmed away) or control
/// characters (refused).
fn edge() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop_oneof![Just(' '), Just('\t'), Just('\n')],
        1 => prop_oneof![Just('\u{0}'), Just('\u{7}'), Just('\u{1b}'), Just('\u{7f}')],
    ]
}

/// Text up to a little past `max` characters, often right at the limit:
/// a few arbitrary characters repeated to an arbitrary length (drawing
/// thousands of characters one by one would make a debug build crawl).
/// Mostly within the limits, so that what is accepted is tried as often
/// as what is refused.
pub fn text(max: usize) -> impl Strategy<Value = String> {
    let length = prop_oneof![
        6 => 0..=max.min(40),
        2 => max.saturating_sub(2)..=max,
        1 => max + 1..=max + 3,
        1 => 0..=max + max / 4 + 2,
    ];
    (
        length,
        proptest::collection::vec(character(), 1..6),
        proptest::option::weighted(0.1, proptest::collection::vec(edge(), 1..4)),
    )
        .prop_map(|(length, pattern, edge)| {
            let mut text: String = pattern.iter().cycle().take(length).collect();
            if let Some(edge) = edge {
                // Blanks or controls at the start, within the same length.
                let count = edge.len().min(length);
                let kept: String = text.chars().skip(count).collect();
                text = edge.into_iter().take(count).chain(kept.chars()).collect();
            }
            text
        })
}

/// An optional text, as JSON fields are: absent, or text as above.
pub fn optional_text(max: usize) -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(0.5, text(max))
}

/// A number: inside and around `range`, at its bounds, zero, huge, NaN,
/// infinite, or any bit pattern.
pub fn number(low: f64, high: f64) -> impl Strategy<Value = f64> {
    let span = high - low;
    prop_oneof![
        8 => low..=high,
        1 => (low - span)..=(high + span),
        1 => prop_oneof![
            Just(low),
            Just(high),
            Just(low - f64::EPSILON * low.abs().max(1.0)),
            Just(high + f64::EPSILON * high.abs().max(1.0)),
            Just(0.0),
            Just(-0.0),
        ],
        1 => prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::MAX),
            Just(f64::MIN),
            Just(f64::MIN_POSITIVE),
        ],
        1 => any::<f64>(),
    ]
}

/// Any JSON value, nested a few levels.
pub fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text(20).prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(text(8), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON object that has some of `fields`, each either a value of the
/// right type (from `typed`) or any JSON value at all, plus stray fields.
pub fn shaped(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> impl Strategy<Value = Value> {
    let entries: Vec<_> = fields
        .into_iter()
        .map(|(name, typed)| {
            proptest::option::weighted(0.95, prop_oneof![30 => typed, 1 => json()])
                .prop_map(move |value| value.map(|v| (name.to_owned(), v)))
        })
        .collect();
    (entries, proptest::collection::vec((text(8), json()), 0..2)).prop_map(|(entries, stray)| {
        let mut object: Map<String, Value> = entries.into_iter().flatten().collect();
        object.extend(stray);
        Value::Object(object)
    })
}

/// A location object: `{"lat", "lon"}` with numbers of every kind.
pub fn location() -> BoxedStrategy<Value> {
    (number(-90.0, 90.0), number(-180.0, 180.0))
        .prop_map(|(lat, lon)| serde_json::json!({ "lat": lat, "lon": lon }))
        .boxed()
}

pub fn string(max: usize) -> BoxedStrategy<Value> {
    text(max).prop_map(Value::String).boxed()
}

pub fn float(low: f64, high: f64) -> BoxedStrategy<Value> {
    number(low, high).prop_map(Value::from).boxed()
}

/// The number of characters, as the limits count them.
pub fn chars(value: &str) -> usize {
    value.chars().count()
}

/// A single line as the limits accept it: trimmed, no control character,
/// line separator or bidirectional override.
pub fn is_clean(value: &str) -> bool {
    value.trim() == value && !value.chars().any(is_refused)
}

/// A description as the limits accept it: as a line, but with LF and TAB.
pub fn is_clean_multiline(value: &str) -> bool {
    value.trim() == value
        && !value
            .chars()
            .any(|c| !matches!(c, '\n' | '\t') && is_refused(c))
}

fn is_refused(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || is_bidi_control(c)
}
