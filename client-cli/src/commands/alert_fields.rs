//! What an alert says, as `p4p post` gives it and `p4p edit` changes it:
//! the flags, defined once (with the help `post` shows; `edit` words some
//! of them its own way with `mut_arg`, and `post` requires --kind and
//! --title), and the `key=value` descriptions of suspects and vehicles.

use p4p_protocol::{AlertKind, Location, Suspect, Vehicle};

use crate::args;

/// The alert's text, kind, place and reach: all optional here.
#[derive(Debug, Default, clap::Args)]
pub struct AlertFields {
    /// What happened.
    #[arg(long, value_parser = args::alert_kind())]
    pub kind: Option<AlertKind>,

    /// One line members see first, 1 to 120 characters.
    #[arg(long)]
    pub title: Option<String>,

    /// What happened, in full (at most 4,000 characters).
    #[arg(long)]
    pub description: Option<String>,

    /// Where it happened [default: your store].
    #[arg(
        long,
        requires = "lon",
        allow_negative_numbers = true,
        value_name = "DEGREES"
    )]
    pub lat: Option<f64>,

    /// Where it happened [default: your store].
    #[arg(
        long,
        requires = "lat",
        allow_negative_numbers = true,
        value_name = "DEGREES"
    )]
    pub lon: Option<f64>,

    /// How far the alert reaches, 0.5 to 500 km [default: by kind: casing 25,
    /// suspicious_vehicle 15, burglary 40, others 50].
    #[arg(long, value_name = "KM")]
    pub radius_km: Option<f64>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("--lat and --lon must be given together")]
pub struct HalfAPlace;

impl AlertFields {
    /// `--lat` and `--lon` as one place, when they are given.
    pub fn location(&self) -> Result<Option<Location>, HalfAPlace> {
        match (self.lat, self.lon) {
            (Some(lat), Some(lon)) => Ok(Some(Location { lat, lon })),
            (None, None) => Ok(None),
            _ => Err(HalfAPlace),
        }
    }
}

/// Who and what was seen: `--suspect` and `--vehicle`, each repeated for
/// every one.
#[derive(Debug, Default, clap::Args)]
pub struct Descriptions {
    /// A suspect: `key=value` pairs separated by `;`. Keys: sex, age, height,
    /// build, hair, clothing, shoes, marks, notes. Repeat for each suspect.
    #[arg(long, value_parser = parse_suspect, value_name = "SPEC")]
    pub suspect: Vec<Suspect>,

    /// A vehicle: `key=value` pairs separated by `;`. Keys: make, model,
    /// color, plate, plate_region, notes. Repeat for each vehicle.
    #[arg(long, value_parser = parse_vehicle, value_name = "SPEC")]
    pub vehicle: Vec<Vehicle>,
}

/// Why a `--suspect` or `--vehicle` description cannot be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("empty {what} description: give key=value pairs separated by `;` (keys: {keys})")]
    Empty { what: &'static str, keys: String },
    #[error("`{part}` is not a key=value pair (valid {what} keys: {keys})")]
    MissingEquals {
        what: &'static str,
        part: String,
        keys: String,
    },
    #[error("unknown {what} key `{key}` (valid keys: {keys})")]
    UnknownKey {
        what: &'static str,
        key: String,
        keys: String,
    },
    #[error("{what} key `{key}` is given twice (valid keys: {keys})")]
    Duplicate {
        what: &'static str,
        key: String,
        keys: String,
    },
    #[error("{what} key `{key}` has no value (valid keys: {keys})")]
    EmptyValue {
        what: &'static str,
        key: String,
        keys: String,
    },
}

/// `clothing=red hoodie; shoes=white sneakers; hair=short black`.
pub fn parse_suspect(spec: &str) -> Result<Suspect, SpecError> {
    let mut suspect = Suspect::default();
    fill(
        spec,
        "suspect",
        &Suspect::FIELDS,
        &mut suspect,
        Suspect::field_mut,
    )?;
    Ok(suspect)
}

/// `make=Honda; color=silver; plate=ABC1234`.
pub fn parse_vehicle(spec: &str) -> Result<Vehicle, SpecError> {
    let mut vehicle = Vehicle::default();
    fill(
        spec,
        "vehicle",
        &Vehicle::FIELDS,
        &mut vehicle,
        Vehicle::field_mut,
    )?;
    Ok(vehicle)
}

/// Reads `key=value; key=value` into the fields of `target` that `field_mut`
/// hands out by name.
fn fill<T>(
    spec: &str,
    what: &'static str,
    fields: &[&str],
    target: &mut T,
    field_mut: impl for<'t> Fn(&'t mut T, &str) -> Option<&'t mut Option<String>>,
) -> Result<(), SpecError> {
    let keys = fields.join(", ");
    let parts: Vec<&str> = spec
        .split(';')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect();
    if parts.is_empty() {
        return Err(SpecError::Empty { what, keys });
    }
    for part in parts {
        let Some((key, value)) = part.split_once('=') else {
            return Err(SpecError::MissingEquals {
                what,
                part: part.to_owned(),
                keys,
            });
        };
        let (key, value) = (key.trim(), value.trim());
        let Some(field) = field_mut(target, key) else {
            return Err(SpecError::UnknownKey {
                what,
                key: key.to_owned(),
                keys,
            });
        };
        if field.is_some() {
            return Err(SpecError::Duplicate {
                what,
                key: key.to_owned(),
                keys,
            });
        }
        if value.is_empty() {
            return Err(SpecError::EmptyValue {
                what,
                key: key.to_owned(),
                keys,
            });
        }
        *field = Some(value.to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suspect_spec_fills_the_named_fields() {
        let suspect = parse_suspect(
            "clothing=red hoodie, dark jeans; shoes = white sneakers ;hair=short black",
        )
        .expect("valid");
        assert_eq!(suspect.clothing.as_deref(), Some("red hoodie, dark jeans"));
        assert_eq!(suspect.shoes.as_deref(), Some("white sneakers"));
        assert_eq!(suspect.hair.as_deref(), Some("short black"));
        assert_eq!(suspect.sex, None);
    }

    #[test]
    fn a_vehicle_spec_fills_the_named_fields() {
        let vehicle = parse_vehicle("make=Honda; color=silver; plate=ABC1234; plate_region=NY;")
            .expect("valid");
        assert_eq!(vehicle.make.as_deref(), Some("Honda"));
        assert_eq!(vehicle.plate_region.as_deref(), Some("NY"));
        assert_eq!(vehicle.model, None);
    }

    #[test]
    fn an_unknown_key_is_named_with_the_valid_ones() {
        let error = parse_suspect("colour=red").expect_err("unknown key");
        let message = error.to_string();
        assert!(message.contains("`colour`"), "{message}");
        assert!(
            message.contains("sex, age, height, build, hair, clothing, shoes, marks, notes"),
            "{message}"
        );
        let error = parse_vehicle("wheels=4").expect_err("unknown key");
        assert!(error
            .to_string()
            .contains("make, model, color, plate, plate_region, notes"));
    }

    #[test]
    fn a_pair_without_equals_is_refused() {
        let error = parse_suspect("hair=short; red hoodie").expect_err("missing =");
        assert!(matches!(&error, SpecError::MissingEquals { part, .. } if part == "red hoodie"));
        assert!(error
            .to_string()
            .contains("`red hoodie` is not a key=value pair"));
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        let error = parse_vehicle("color=silver; color=grey").expect_err("duplicate");
        assert!(matches!(&error, SpecError::Duplicate { key, .. } if key == "color"));
    }

    #[test]
    fn an_empty_spec_is_refused() {
        assert!(matches!(parse_suspect(""), Err(SpecError::Empty { .. })));
        assert!(matches!(
            parse_suspect(" ; ;"),
            Err(SpecError::Empty { .. })
        ));
    }

    #[test]
    fn a_key_without_value_is_refused() {
        assert!(matches!(
            parse_suspect("hair="),
            Err(SpecError::EmptyValue { key, .. }) if key == "hair"
        ));
    }
}
