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

/// A required text: at most `max` characters as sent, then trimmed and not
/// empty. The limit counts what was sent, as the OpenAPI document's
/// `maxLength` does.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String, Invalid> {
    within(field, value, max)?;
    let value = value.trim();
    if value.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    bounded(field, value, max)?;
    Ok(value.to_owned())
}

/// An optional text: at most `max` characters as sent, then trimmed;
/// empty means absent.
pub fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, Invalid> {
    if let Some(value) = value {
        within(field, value, max)?;
    }
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    bounded(field, value, max)?;
    Ok(Some(value.to_owned()))
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

fn bounded(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    within(field, value, max)?;
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(())
}

/// A reason given for a moderation or membership action.
pub fn reason(value: Option<&str>, required: bool) -> Result<Option<String>, Invalid> {
    let reason = optional_text("reason", value, 500)?;
    if required && reason.is_none() {
        return Err(Invalid::new("reason", "is required"));
    }
    Ok(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded_in_characters_not_bytes() {
        assert_eq!(required_text("title", " ring ", 6).unwrap(), "ring");
        assert!(required_text("title", "  ring  ", 6).is_err());
        assert_eq!(required_text("title", "ééééé", 5).unwrap(), "ééééé");
        let err = required_text("title", "ééééééé", 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "title must be at most 5 characters (got 7)"
        );
        assert_eq!(
            required_text("title", "   ", 5).unwrap_err().to_string(),
            "title must not be empty"
        );
        assert!(required_text("title", "a\u{0}b", 5).is_err());
    }

    #[test]
    fn optional_text_treats_blank_as_absent() {
        assert_eq!(optional_text("d", Some("  "), 3).unwrap(), None);
        assert_eq!(optional_text("d", None, 3).unwrap(), None);
        assert!(optional_text("d", Some("abcd"), 3).is_err());
    }
}
