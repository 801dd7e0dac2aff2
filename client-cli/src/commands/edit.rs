//! `p4p edit`: the author (or a moderator) corrects a posted alert.

use p4p_protocol::{Alert, AlertPatch};

use crate::api::paths;
use crate::args::AlertId;
use crate::commands::alert_fields::{AlertFields, Descriptions, HalfAPlace};
use crate::context::Context;
use crate::render;

// The flags are those of `p4p post` (`alert_fields`), at least one of
// them; the help of some says what a change to it does.
#[derive(Debug, clap::Args)]
#[cfg_attr(test, derive(Default))]
#[command(
    group(
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
    ),
    mut_arg("description", |arg| {
        arg.help("What happened, in full (at most 4,000 characters); `\"\"` clears it")
    }),
    mut_arg("lat", |arg| arg.help("Where it happened (with --lon)")),
    mut_arg("lon", |arg| arg.help("Where it happened (with --lat)")),
    mut_arg("radius_km", |arg| arg.help("How far the alert reaches, 0.5 to 500 km")),
    mut_arg("suspect", |arg| {
        arg.help(
            "A suspect, as for `p4p post`: `key=value` pairs separated by `;`. Repeat for \
             each suspect; the suspects given replace all the alert's",
        )
        .conflicts_with("clear_suspects")
    }),
    mut_arg("vehicle", |arg| {
        arg.help(
            "A vehicle, as for `p4p post`: `key=value` pairs separated by `;`. Repeat for \
             each vehicle; the vehicles given replace all the alert's",
        )
        .conflicts_with("clear_vehicles")
    })
)]
pub struct EditArgs {
    #[command(flatten)]
    pub target: AlertId,

    #[command(flatten)]
    pub alert: AlertFields,

    #[command(flatten)]
    pub seen: Descriptions,

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
    #[error(transparent)]
    HalfAPlace(#[from] HalfAPlace),
}

pub async fn run(ctx: &Context, args: EditArgs) -> anyhow::Result<()> {
    let endpoint = paths::alert(args.target.id);
    let if_version = args.if_version;
    let patch = alert_patch(args)?;
    let api = ctx.api()?;
    // If-Match: the edit applies to the version read, so that it never
    // silently undoes a change made meanwhile (a moderator's, say).
    let version = match if_version {
        Some(version) => version,
        None => api.get::<Alert>(&endpoint, &[]).await?.body.version,
    };
    let if_match = format!("\"{version}\"");
    let reply = api
        .send_json::<_, Alert>(
            reqwest::Method::PATCH,
            &endpoint,
            &patch,
            &[("If-Match", &if_match)],
        )
        .await?;
    ctx.emit(&reply, |alert| {
        format!(
            "Updated alert #{} ({}).\n{}",
            alert.id,
            alert.status,
            render::alert_in_full(alert)
        )
    })
}

/// The patch that sends exactly what the flags give: a list given replaces
/// the alert's whole list, a `--clear-*` flag sends an empty one.
pub fn alert_patch(args: EditArgs) -> Result<AlertPatch, EditError> {
    let location = args.alert.location()?;
    let patch = AlertPatch {
        kind: args.alert.kind,
        title: args.alert.title,
        description: args.alert.description,
        location,
        radius_km: args.alert.radius_km,
        suspects: replacement(args.seen.suspect, args.clear_suspects),
        vehicles: replacement(args.seen.vehicle, args.clear_vehicles),
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
    use crate::commands::alert_fields::parse_suspect;
    use p4p_protocol::AlertKind;

    /// An edit of alert 42 that changes `alert`.
    fn edit(alert: AlertFields) -> EditArgs {
        EditArgs {
            target: AlertId { id: 42 },
            alert,
            ..EditArgs::default()
        }
    }

    #[test]
    fn only_the_fields_given_are_sent() {
        let patch = alert_patch(edit(AlertFields {
            title: Some("Two men, one in a red hoodie".to_owned()),
            radius_km: Some(10.0),
            ..AlertFields::default()
        }))
        .expect("a change");
        assert_eq!(
            serde_json::to_value(&patch).expect("serializes"),
            serde_json::json!({"title": "Two men, one in a red hoodie", "radius_km": 10.0})
        );
    }

    #[test]
    fn a_place_is_sent_as_one_location() {
        let patch = alert_patch(edit(AlertFields {
            lat: Some(-33.86),
            lon: Some(151.2),
            kind: Some(AlertKind::GrabAndRun),
            ..AlertFields::default()
        }))
        .expect("a change");
        assert_eq!(
            serde_json::to_value(&patch).expect("serializes"),
            serde_json::json!({"kind": "grab_and_run", "location": {"lat": -33.86, "lon": 151.2}})
        );
        let half = alert_patch(edit(AlertFields {
            lat: Some(-33.86),
            ..AlertFields::default()
        }));
        assert_eq!(half, Err(EditError::HalfAPlace(HalfAPlace)));
    }

    #[test]
    fn suspects_and_vehicles_given_replace_the_whole_list() {
        let patch = alert_patch(EditArgs {
            seen: Descriptions {
                suspect: vec![
                    parse_suspect("sex=male; clothing=red hoodie").expect("valid"),
                    parse_suspect("age=20s").expect("valid"),
                ],
                vehicle: Vec::new(),
            },
            ..edit(AlertFields::default())
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
            ..edit(AlertFields::default())
        })
        .expect("a change");
        assert_eq!(
            serde_json::to_value(&patch).expect("serializes"),
            serde_json::json!({"suspects": [], "vehicles": []})
        );
    }

    #[test]
    fn an_empty_description_is_a_change_that_clears_it() {
        let patch = alert_patch(edit(AlertFields {
            description: Some(String::new()),
            ..AlertFields::default()
        }))
        .expect("a change");
        assert_eq!(patch.description.as_deref(), Some(""));
    }

    #[test]
    fn no_change_is_an_error() {
        assert_eq!(
            alert_patch(edit(AlertFields::default())),
            Err(EditError::NothingToChange)
        );
    }
}
