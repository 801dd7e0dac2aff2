//! Schemas for the server's OpenAPI document (feature `openapi`) that say
//! exactly what the server accepts, so that a schema-driven fuzzer finds
//! every mismatch: texts are trimmed, then must not be blank (when
//! required), and contain no control character but tab and line breaks.

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

/// What the server trims from both ends of a text (Rust's `char::is_whitespace`).
macro_rules! space {
    () => {
        r"\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}

/// Control characters, which no text may contain but tab, CR and LF.
macro_rules! control {
    () => {
        r"\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F"
    };
}

/// Control characters and space: what a text must not start or end with.
macro_rules! invisible {
    () => {
        r"\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}

/// Not blank once trimmed; no control character.
pub const REQUIRED_TEXT: &str = concat!(
    "^[",
    space!(),
    "]*[^",
    control!(),
    "]*[^",
    invisible!(),
    "][",
    space!(),
    "]*$"
);

/// Blank (absent), or as [`REQUIRED_TEXT`].
pub const OPTIONAL_TEXT: &str = concat!(
    "^[",
    space!(),
    "]*(?:[^",
    control!(),
    "]*[^",
    invisible!(),
    "])?[",
    space!(),
    "]*$"
);

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
