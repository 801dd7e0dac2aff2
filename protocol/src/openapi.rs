//! Schemas for the server's OpenAPI document (feature `openapi`) that say
//! exactly what the server accepts, so that a schema-driven fuzzer finds
//! every mismatch: single-line texts hold no control character (CR, LF and
//! TAB included), line separator or bidirectional override; a description
//! may also hold LF, CR and TAB; texts are trimmed, then must not be blank
//! (when required).

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

/// What no single-line text may contain: C0 and C1 controls, DEL, U+2028
/// and U+2029, the bidirectional overrides and isolates.
macro_rules! refused {
    () => {
        r"\u0000-\u001F\u007F-\u009F\u2028\u2029\u202A-\u202E\u2066-\u2069"
    };
}

/// What no description may contain: as [`refused`] but TAB, LF and CR.
macro_rules! refused_in_lines {
    () => {
        r"\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u2028\u2029\u202A-\u202E\u2066-\u2069"
    };
}

/// What the server trims from both ends of a text (Rust's
/// `char::is_whitespace`) that is not refused anyway.
macro_rules! space {
    () => {
        r" \u00A0\u1680\u2000-\u200A\u202F\u205F\u3000"
    };
}

/// Refused characters and space: what an email address has none of.
macro_rules! invisible {
    () => {
        r"\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202A-\u202F\u205F\u2066-\u2069\u3000"
    };
}

/// One line, not blank once trimmed.
pub const REQUIRED_TEXT: &str = concat!(
    "^[^",
    refused!(),
    "]*[^",
    refused!(),
    space!(),
    "][^",
    refused!(),
    "]*$"
);

/// One line, or blank (absent).
pub const OPTIONAL_TEXT: &str = concat!("^[^", refused!(), "]*$");

/// Lines (a description), or blank (absent).
pub const OPTIONAL_MULTILINE_TEXT: &str = concat!("^[^", refused_in_lines!(), "]*$");

/// One `@` with something before it, a dot inside the domain, no space
/// inside (the ends are trimmed).
pub const EMAIL: &str = concat!(
    "^[",
    space!(),
    "]*",
    "[^@",
    invisible!(),
    "]+@",
    "[^@.",
    invisible!(),
    "][^@",
    invisible!(),
    "]*\\.[^@",
    invisible!(),
    "]*[^@.",
    invisible!(),
    "]",
    "[",
    space!(),
    "]*$"
);

fn text(pattern: &str, max: usize, nullable: bool) -> ObjectBuilder {
    let kind = if nullable {
        utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null])
    } else {
        utoipa::openapi::schema::SchemaType::new(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .max_length(Some(max))
        .pattern(Some(pattern))
}

/// A required text of at most `MAX` characters.
pub fn required_text<const MAX: usize>() -> impl Into<RefOr<Schema>> {
    text(REQUIRED_TEXT, MAX, false)
}

/// A replacement for a required text, or `null` for no change.
pub fn required_text_or_null<const MAX: usize>() -> impl Into<RefOr<Schema>> {
    text(REQUIRED_TEXT, MAX, true)
}

/// An optional text of at most `MAX` characters; blank or `null` is absent.
pub fn optional_text<const MAX: usize>() -> impl Into<RefOr<Schema>> {
    text(OPTIONAL_TEXT, MAX, true)
}

/// An optional multi-line text (a description) of at most `MAX` characters.
pub fn optional_multiline_text<const MAX: usize>() -> impl Into<RefOr<Schema>> {
    text(OPTIONAL_MULTILINE_TEXT, MAX, true)
}

/// An email address of at most `MAX` characters.
pub fn email<const MAX: usize>() -> impl Into<RefOr<Schema>> {
    text(EMAIL, MAX, false)
}

/// `accept_pledge`: the pledge is accepted, or there is no application.
pub fn must_be_true() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([true]))
}
