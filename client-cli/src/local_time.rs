//! Times as the person at the terminal reads them: in the local time zone.
//!
//! The wire carries UTC; people read local time. The zone's offset is read
//! once, before the async runtime starts threads: on Unix the C library's
//! time zone functions are only safe to call while the process has one
//! thread (the `time` crate refuses otherwise). Where it cannot be read,
//! times stay in UTC, marked so.

use std::sync::OnceLock;

use p4p_protocol::Timestamp;
use time::macros::format_description;
use time::UtcOffset;

static OFFSET: OnceLock<UtcOffset> = OnceLock::new();

/// Reads the local offset; call it first thing in `main`, single-threaded.
pub fn init() {
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let _ = OFFSET.set(offset);
}

/// `2026-12-04 19:31:05 +01:00`: the moment in local time, with its offset
/// so that it is never ambiguous.
pub fn local(at: Timestamp) -> String {
    let offset = OFFSET.get().copied().unwrap_or(UtcOffset::UTC);
    let format = format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory]:[offset_minute]"
    );
    at.to_offset(offset)
        .format(&format)
        .unwrap_or_else(|_| at.to_string())
}

/// [`local`], or `never` for a time that has not happened.
pub fn local_or_never(at: Option<Timestamp>) -> String {
    at.map(local).unwrap_or_else(|| "never".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_time_reads_with_its_offset() {
        let text = local(datetime!(2026-12-04 18:31:05 UTC));
        // Whatever the machine's zone, the offset is shown and the time is whole.
        assert!(text.starts_with("2026-12-0"), "{text}");
        assert_eq!(text.len(), "2026-12-04 18:31:05 +00:00".len(), "{text}");
        assert_eq!(local_or_never(None), "never");
    }
}
