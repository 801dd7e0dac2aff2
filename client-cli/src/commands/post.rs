//! `p4p post`: a store warns the stores around it.

use p4p_protocol::{
    Alert, AlertKind, AlertStatus, Location, NewAlert, Suspect, Timestamp, Vehicle,
};

use crate::context::Context;
use crate::{args, output, render};

#[derive(Debug, clap::Args)]
pub struct PostArgs {
    /// What happened.
    #[arg(long, value_parser = args::alert_kind())]
    pub kind: AlertKind,

    /// One line members see first, 1 to 120 characters.
    #[arg(long)]
    pub title: String,

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

    /// When it happened, RFC 3339 [default: now].
    #[arg(long, value_parser = args::timestamp, value_name = "TIME")]
    pub occurred_at: Option<Timestamp>,

    /// A suspect: `key=value` pairs separated by `;`. Keys: sex, age, height,
    /// build, hair, clothing, shoes, marks, notes. Repeat for each suspect.
    #[arg(long, value_parser = parse_suspect, value_name = "SPEC")]
    pub suspect: Vec<Suspect>,

    /// A vehicle: `key=value` pairs separated by `;`. Keys: make, model,
    /// color, plate, plate_region, notes. Repeat for each vehicle.
    #[arg(long, value_parser = parse_vehicle, value_name = "SPEC")]
    pub vehicle: Vec<Vehicle>,

    /// The post's Idempotency-Key [default: a new random one]. A post that
    /// gets no answer is retried with it, and the server posts it at most
    /// once; give your own to retry safely from a script, across runs.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

pub async fn run(ctx: &Context, args: PostArgs) -> anyhow::Result<()> {
    let location = match (args.lat, args.lon) {
        (Some(lat), Some(lon)) => Some(Location { lat, lon }),
        (None, None) => None,
        _ => anyhow::bail!("--lat and --lon must be given together"),
    };
    let alert = NewAlert {
        kind: args.kind,
        title: args.title,
        description: args.description,
        occurred_at: args.occurred_at,
        location,
        radius_km: args.radius_km,
        suspects: args.suspect,
        vehicles: args.vehicle,
    };
    let reply = ctx
        .api()?
        .post_once::<_, Alert>(&["v1", "alerts"], &alert, args.idempotency_key.as_deref())
        .await?;
    if ctx.json {
        output::json(&reply.json)?;
        return Ok(());
    }
    output::line(&posted(&reply.body))?;
    Ok(())
}

/// `Posted alert #5 (published)`, or with why it waits: `(pending: new
/// member: held until a moderator approves it ...)`.
fn posted(alert: &Alert) -> String {
    let why = match alert.status_reason.as_deref().filter(|r| !r.is_empty()) {
        Some(reason) => format!(": {}", render::escape(reason)),
        None if alert.status == AlertStatus::Pending => {
            ": held until a moderator approves it".to_owned()
        }
        None => String::new(),
    };
    format!("Posted alert #{} ({}{why})", alert.id, alert.status)
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
