//! Arguments that several commands share: the trade's enumerations
//! (listed in `--help`), places and times, an alert's id, and paging.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use p4p_protocol::{AlertKind, AlertStatus, Location, StoreStatus, Timestamp};

/// `--kind`: one of the alert kinds, listed in `--help`.
pub fn alert_kind() -> impl TypedValueParser<Value = AlertKind> {
    PossibleValuesParser::new(AlertKind::ALL.iter().map(|value| value.as_str()))
        .try_map(|text| text.parse::<AlertKind>())
}

/// `--status` of an alert.
pub fn alert_status() -> impl TypedValueParser<Value = AlertStatus> {
    PossibleValuesParser::new(AlertStatus::ALL.iter().map(|value| value.as_str()))
        .try_map(|text| text.parse::<AlertStatus>())
}

/// `--status` of a store.
pub fn store_status() -> impl TypedValueParser<Value = StoreStatus> {
    PossibleValuesParser::new(StoreStatus::ALL.iter().map(|value| value.as_str()))
        .try_map(|text| text.parse::<StoreStatus>())
}

/// `LAT,LON` in degrees, e.g. `40.71,-74.0` or `-33.86,151.2`.
pub fn location(text: &str) -> Result<Location, String> {
    let Some((lat, lon)) = text.split_once(',') else {
        return Err(format!("`{text}` is not LAT,LON (e.g. 40.71,-74.0)"));
    };
    let lat = degrees(lat, "latitude", 90.0)?;
    let lon = degrees(lon, "longitude", 180.0)?;
    Ok(Location { lat, lon })
}

fn degrees(text: &str, name: &str, limit: f64) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("the {name} `{}` is not a number", text.trim()))?;
    if !value.is_finite() || value.abs() > limit {
        return Err(format!(
            "the {name} {value} is not between -{limit} and {limit}"
        ));
    }
    Ok(value)
}

/// An RFC 3339 time, e.g. `2026-11-24T15:04:05Z`.
pub fn timestamp(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse(text, &time::format_description::well_known::Rfc3339).map_err(|error| {
        format!("`{text}` is not an RFC 3339 time like 2026-11-24T15:04:05Z: {error}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_accepts_negative_coordinates_and_spaces() {
        let place = location("-33.86, 151.2").expect("valid");
        assert_eq!(place.lat, -33.86);
        assert_eq!(place.lon, 151.2);
        let place = location("40.7128,-74.006").expect("valid");
        assert_eq!(place.lon, -74.006);
    }

    #[test]
    fn near_refuses_what_is_not_a_place() {
        assert!(location("40.7").is_err());
        assert!(location("north,west").is_err());
        assert!(location("91,0").is_err());
        assert!(location("0,-180.5").is_err());
        assert!(location("NaN,0").is_err());
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert!(timestamp("2026-11-24T15:04:05Z").is_ok());
        assert!(timestamp("2026-11-24 15:04").is_err());
    }
}

/// The alert a command acts on.
#[derive(Debug, Default, clap::Args)]
pub struct AlertId {
    /// The alert's id, as `p4p alerts` and `p4p listen` print it.
    pub id: i64,
}

/// `--limit` and `--before-id`: one page of a newest-first listing.
#[derive(Debug, clap::Args)]
pub struct Paging {
    /// At most this many, 1 to 500 [default: 50].
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,

    /// Only those older than this id: the next page.
    #[arg(long, value_name = "ID")]
    pub before_id: Option<i64>,
}

impl Paging {
    /// Adds the page's query parameters.
    pub fn push_query(&self, query: &mut Vec<(&str, String)>) {
        if let Some(limit) = self.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(before_id) = self.before_id {
            query.push(("before_id", before_id.to_string()));
        }
    }

    /// A page for people: `text`, then the hint for the next page of
    /// `what`, when there is one.
    pub fn with_next_hint(text: String, what: &str, next_before_id: Option<i64>) -> String {
        match next_before_id {
            Some(next) => format!("{text}\nMore {what}: run again with --before-id {next}"),
            None => text,
        }
    }
}
