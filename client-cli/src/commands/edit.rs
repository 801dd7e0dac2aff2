//! `p4p edit`: the author (or a moderator) corrects a posted alert.

use p4p_protocol::{Alert, AlertKind, AlertPatch, Location, Suspect, Vehicle};

use crate::commands::post::{parse_suspect, parse_vehicle};
use crate::context::Context;
use crate::{args, output, render};

#[derive(Debug, clap::Args)]
#[cfg_attr(test, derive(Default))]
#[command(group(
    clap::ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args([
            "kind",
            "title",
            "description",
            "lat",
            "lon",
            "radius_km",
            "suspect",
            "vehicle",
            "clear_suspects",
            "clear_vehicles",
        ])
))]
pub struct EditArgs {
    /// The alert's id, as `p4p alerts` and `p4p listen` print it.
    pub id: i64,

    /// What happened.
    #[arg(long, value_parser = args::alert_kind())]
    pub kind: Option<AlertKind>,

    /// One line members see first, 1 to 120 characters.
    #[arg(long)]
    pub title: Option<String>,

    /// What happened, in full (at most 4,000 characters); `""` clears it.
    #[arg(long)]
    pub description: Option<String>,

    /// Where it happened (with --lon).
    #[arg(
        long,
        requires = "lon",
        allow_negative_numbers = true,
        value_name = "DEGREES"
    )]
    pub lat: Option<f64>,

    /// Where it happened (with --lat).
    #[arg(
        long,
        requires = "lat",
        allow_negative_numbers = true,
        value_name = "DEGREES"
    )]
    pub lon: Option<f64>,

    /// How far the alert reaches, 0.5 to 500 km.
    #[arg(long, value_name = "KM")]
    pub radius_km: Option<f64>,

    /// A suspect, as for `p4p post`: `key=value` pairs separated by `;`.
    /// Repeat for each suspect; the suspects given replace all the alert's.
    #[arg(
        long,
        value_parser = parse_suspect,
        value_name = "SPEC",
        conflicts_with = "clear_suspects"
    )]
    pub suspect: Vec<Suspect>,

    /// A vehicle, as for `p4p post`: `key=value` pairs separated by `;`.
    /// Repeat for each vehicle; the vehicles given replace all the alert's.
    #[arg(
        long,
        value_parser = parse_vehicle,
        value_name = "SPEC",
        conflicts_with = "clear_vehicles"
    )]
    pub vehicle: Vec<Vehicle>,

    /// Remove every suspect from the alert.
    #[arg(long)]
    pub clear_suspects: bool,

    /// Remove every vehicle from the alert.
    #[arg(long)]
    pub clear_vehicles: bool,

    /// Change the alert only if it is still at this version (as `p4p show`
    /// printed it) [default: the version read just before the edit]. If it
    /// changed since, nothing changes and p4p says so.
    #[arg(long, value_name = "VERSION")]
    pub if_version: Option<i64>,
}

/// Why the flags of `p4p edit` make no patch.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error(
        "nothing to change: give at least one of --kind, --title, --description, \
--lat and --lon, --radius-km, --suspect, --vehicle, --clear-suspects, --clear-vehicles"
    )]
    NothingToChange,
    #[error("--lat and --lon must be given together")]
    HalfAPlace,
}

pub async fn run(ctx: &Context, args: EditArgs) -> anyhow::Result<()> {
    let id = args.id.to_string();
    let if_version = args.if_version;
    let patch = alert_patch(args)?;
    let api = ctx.api()?;
    // If-Match: the edit applies to the version read, so that it never
    // silently undoes a change made meanwhile (a moderator's, say).
    let version = match if_version {
        Some(version) => version,
        None => {
            api.get::<Alert>(&["v1", "alerts", &id], &[])
                .await?
                .body
                .version
        }
    };
    let if_match = format!("\"{version}\"");
    let reply = api
        .send_json::<_, Alert>(
            reqwest::Method::PATCH,
            &["v1", "alerts", &id],
            &patch,
            &[("If-Match", &if_match)],
        )
        .await?;
    if ctx.json {
        output::json(&reply.json)?;
        return Ok(());
    }
    let alert = reply.body;
    output::line(&format!("Updated alert #{} ({}).", alert.id, alert.status))?;
    output::line(&render::alert_in_full(&alert))?;
    Ok(())
}

/// The patch that sends exactly what the flags give: a list given replaces
/// the alert's whole list, a `--clear-*` flag sends an empty one.
pub fn alert_patch(args: EditArgs) -> Result<AlertPatch, EditError> {
    let location = match (args.lat, args.lon) {
        (Some(lat), Some(lon)) => Some(Location { lat, lon }),
        (None, None) => None,
        _ => return Err(EditError::HalfAPlace),
    };
    let patch = AlertPatch {
        kind: args.kind,
        title: args.title,
        description: args.description,
        location,
        radius_km: args.radius_km,
        suspects: replacement(args.suspect, args.clear_suspects),
        vehicles: replacement(args.vehicle, args.clear_vehicles),
    };
    if patch == AlertPatch::default() {
        return Err(EditError::NothingToChange);
    }
    Ok(patch)
}

/// `Some(list)` when the list is to change: emptied, or replaced by the items given.
fn replacement<T>(given: Vec<T>, clear: bool) -> Option<Vec<T>> {
    if clear {
        Some(Vec::new())
    } else if given.is_empty() {
        None
    } else {
        Some(given)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(id: i64) -> EditArgs {
        EditArgs {
            id,
            ..EditArgs::default()
        }
    }

    #[test]
    fn only_the_fields_given_are_sent() {
        let patch = alert_patch(EditArgs {
            title: Some("Two men, one in a red hoodie".to_owned()),
            radius_km: Some(10.0),
            ..edit(42)
        })
        .expect("a change");
        assert_eq!(
            serde_json::to_value(&patch).expect("serializes"),
            serde_json::json!({"title": "Two men, one in a red hoodie", "radius_km": 10.0})
        );
    }

    #[test]
    fn a_place_is_sent_as_one_location() {
        let patch = alert_patch(EditArgs {
            lat: Some(-33.86),
            lon: Some(151.2),
            kind: Some(AlertKind::GrabAndRun),
            ..edit(42)
        })
        .expect("a change");
        assert_eq!(
            serde_json::to_value(&patch).expect("serializes"),
            serde_json::json!({"kind": "grab_and_run", "location": {"lat": -33.86, "lon": 151.2}})
        );
        let half = alert_patch(EditArgs {
            lat: Some(-33.86),
            ..edit(42)
        });
        assert_eq!(half, Err(EditError::HalfAPlace));
    }

    #[test]
    fn suspects_and_vehicles_given_replace_the_whole_list() {
        let patch = alert_patch(EditArgs {
            suspect: vec![
                parse_suspect("sex=male; clothing=red hoodie").expect("valid"),
                parse_suspect("age=20s").expect("valid"),
            ],
            ..edit(42)
        })
        .expect("a change");
        assert_eq!(patch.suspects.as_ref().map(Vec::len), Some(2));
        assert_eq!(patch.vehicles, None);
    }

    #[test]
    fn clear_flags_send_empty_lists() {
        let patch = alert_patch(EditArgs {
            clear_suspects: true,
            clear_vehicles: true,
            ..edit(42)
        })
        .expect("a change");
        assert_eq!(
            serde_json::to_value(&patch).expect("serializes"),
            serde_json::json!({"suspects": [], "vehicles": []})
        );
    }

    #[test]
    fn an_empty_description_is_a_change_that_clears_it() {
        let patch = alert_patch(EditArgs {
            description: Some(String::new()),
            ..edit(42)
        })
        .expect("a change");
        assert_eq!(patch.description.as_deref(), Some(""));
    }

    #[test]
    fn no_change_is_an_error() {
        assert_eq!(alert_patch(edit(42)), Err(EditError::NothingToChange));
    }
}
