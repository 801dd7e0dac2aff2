//! A new alert, checked against every limit of docs/API.md.

use p4p_protocol::{
    Alert, AlertKind, AlertPatch, AlertStatus, NewAlert, StoreRef, Suspect, Timestamp, Vehicle,
};
use time::{Duration, OffsetDateTime};

use super::place::{Area, Place, RadiusKm};
use super::{optional_line, optional_multiline, required_line, Invalid};

pub const MAX_TITLE: usize = 120;
pub const MAX_DESCRIPTION: usize = 4_000;
pub const MAX_SUSPECTS: usize = 10;
pub const MAX_VEHICLES: usize = 10;
pub const MAX_DESCRIPTOR_FIELD: usize = 200;
/// How far in the future `occurred_at` may lie, for clocks that run fast.
pub const CLOCK_SKEW: Duration = Duration::minutes(5);

/// A new alert whose every field is within the limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidAlert {
    pub kind: AlertKind,
    pub title: String,
    pub description: Option<String>,
    pub occurred_at: Timestamp,
    pub reach: Area,
    pub suspects: Vec<Suspect>,
    pub vehicles: Vec<Vehicle>,
}

impl ValidAlert {
    /// Checks `input` posted by a store at `store_place` at time `now`.
    pub fn parse(
        input: NewAlert,
        store_place: Place,
        now: OffsetDateTime,
    ) -> Result<Self, Invalid> {
        let title = required_line("title", &input.title, MAX_TITLE)?;
        let description =
            optional_multiline("description", input.description.as_deref(), MAX_DESCRIPTION)?;
        let occurred_at = match input.occurred_at {
            None => now,
            Some(at) if at > now + CLOCK_SKEW => {
                return Err(Invalid::new("occurred_at", "must not be in the future"));
            }
            Some(at) => at,
        };
        let center = match input.location {
            Some(location) => Place::parse("location", location)?,
            None => store_place,
        };
        let radius = RadiusKm::parse(
            "radius_km",
            input
                .radius_km
                .unwrap_or_else(|| input.kind.default_radius_km()),
        )?;
        Ok(ValidAlert {
            kind: input.kind,
            title,
            description,
            occurred_at: whole_seconds(occurred_at),
            reach: Area { center, radius },
            suspects: descriptors(
                "suspects",
                input.suspects,
                MAX_SUSPECTS,
                Suspect::fields,
                clean_suspect,
            )?,
            vehicles: descriptors(
                "vehicles",
                input.vehicles,
                MAX_VEHICLES,
                Vehicle::fields,
                clean_vehicle,
            )?,
        })
    }

    /// The alert as it is first stored, under `id`, by `store`: version 1,
    /// not verified, created and updated `now`.
    pub fn first_version(
        &self,
        id: i64,
        store: StoreRef,
        status: AlertStatus,
        status_reason: Option<String>,
        now: OffsetDateTime,
    ) -> Alert {
        Alert {
            id,
            kind: self.kind,
            status,
            title: self.title.clone(),
            description: self.description.clone(),
            occurred_at: self.occurred_at,
            location: self.reach.center.location(),
            radius_km: self.reach.radius.km(),
            suspects: self.suspects.clone(),
            vehicles: self.vehicles.clone(),
            store,
            verified: false,
            version: 1,
            status_reason,
            created_at: now,
            updated_at: now,
        }
    }
}

/// An alert as a patch would leave it, to be checked like a new one.
pub fn patched(current: &Alert, patch: AlertPatch) -> NewAlert {
    NewAlert {
        kind: patch.kind.unwrap_or(current.kind),
        title: patch.title.unwrap_or_else(|| current.title.clone()),
        description: patch.description.or_else(|| current.description.clone()),
        occurred_at: Some(current.occurred_at),
        location: Some(patch.location.unwrap_or(current.location)),
        radius_km: Some(patch.radius_km.unwrap_or(current.radius_km)),
        suspects: patch.suspects.unwrap_or_else(|| current.suspects.clone()),
        vehicles: patch.vehicles.unwrap_or_else(|| current.vehicles.clone()),
    }
}

/// Timestamps are kept to the second, in UTC.
pub fn whole_seconds(at: OffsetDateTime) -> OffsetDateTime {
    let utc = at.to_offset(time::UtcOffset::UTC);
    utc.replace_nanosecond(0).unwrap_or(utc)
}

/// A descriptor's fields with their names (`Suspect::fields`, `Vehicle::fields`).
type Fields<T, const N: usize> = fn(&T) -> [(&'static str, &Option<String>); N];

/// Checks a list of suspects or vehicles: its length and each field.
fn descriptors<T, const N: usize>(
    list: &str,
    items: Vec<T>,
    max_items: usize,
    fields: Fields<T, N>,
    clean: fn(T) -> T,
) -> Result<Vec<T>, Invalid> {
    if items.len() > max_items {
        return Err(Invalid::new(
            list,
            format!("must list at most {max_items} (got {})", items.len()),
        ));
    }
    for (index, item) in items.iter().enumerate() {
        for (name, value) in fields(item) {
            optional_line(
                &format!("{list}[{index}].{name}"),
                value.as_deref(),
                MAX_DESCRIPTOR_FIELD,
            )?;
        }
    }
    Ok(items.into_iter().map(clean).collect())
}

/// Trims every field; a blank field is absent.
fn clean(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn clean_suspect(s: Suspect) -> Suspect {
    Suspect {
        sex: clean(s.sex),
        age: clean(s.age),
        height: clean(s.height),
        build: clean(s.build),
        hair: clean(s.hair),
        clothing: clean(s.clothing),
        shoes: clean(s.shoes),
        marks: clean(s.marks),
        notes: clean(s.notes),
    }
}

fn clean_vehicle(v: Vehicle) -> Vehicle {
    Vehicle {
        make: clean(v.make),
        model: clean(v.model),
        color: clean(v.color),
        plate: clean(v.plate),
        plate_region: clean(v.plate_region),
        notes: clean(v.notes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p4p_protocol::Location;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-24 15:00:00 UTC);

    fn store() -> Place {
        Place::parse(
            "location",
            Location {
                lat: 40.7,
                lon: -74.0,
            },
        )
        .unwrap()
    }

    fn input() -> NewAlert {
        NewAlert {
            kind: AlertKind::Casing,
            title: "Two men casing showcases".into(),
            description: None,
            occurred_at: None,
            location: None,
            radius_km: None,
            suspects: vec![],
            vehicles: vec![],
        }
    }

    fn error(input: NewAlert) -> String {
        ValidAlert::parse(input, store(), NOW)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_are_the_stores_place_the_kinds_radius_and_now() {
        let alert = ValidAlert::parse(input(), store(), NOW).unwrap();
        assert_eq!(alert.reach.center, store());
        assert_eq!(alert.reach.radius.km(), 25.0);
        assert_eq!(alert.occurred_at, NOW);
        let vehicle = ValidAlert::parse(
            NewAlert {
                kind: AlertKind::SuspiciousVehicle,
                ..input()
            },
            store(),
            NOW,
        )
        .unwrap();
        assert_eq!(vehicle.reach.radius.km(), 15.0);
    }

    #[test]
    fn each_limit_names_its_field() {
        assert_eq!(
            error(NewAlert {
                title: " ".into(),
                ..input()
            }),
            "title must not be empty"
        );
        assert_eq!(
            error(NewAlert {
                title: "x".repeat(121),
                ..input()
            }),
            "title must be at most 120 characters (got 121)"
        );
        assert!(ValidAlert::parse(
            NewAlert {
                title: "x".repeat(120),
                ..input()
            },
            store(),
            NOW
        )
        .is_ok());
        assert!(error(NewAlert {
            description: Some("x".repeat(4_001)),
            ..input()
        })
        .starts_with("description"));
        assert_eq!(
            error(NewAlert {
                radius_km: Some(0.0),
                ..input()
            }),
            "radius_km must be between 0.5 and 500 km"
        );
        assert!(error(NewAlert {
            radius_km: Some(501.0),
            ..input()
        })
        .starts_with("radius_km"));
        assert!(error(NewAlert {
            location: Some(Location {
                lat: -91.0,
                lon: 0.0
            }),
            ..input()
        })
        .starts_with("location.lat"));
        assert!(error(NewAlert {
            suspects: vec![Suspect::default(); 11],
            ..input()
        })
        .starts_with("suspects"));
        assert!(error(NewAlert {
            vehicles: vec![Vehicle::default(); 11],
            ..input()
        })
        .starts_with("vehicles"));
        let long_plate = Vehicle {
            plate: Some("x".repeat(201)),
            ..Vehicle::default()
        };
        assert!(error(NewAlert {
            vehicles: vec![Vehicle::default(), long_plate],
            ..input()
        })
        .starts_with("vehicles[1].plate"));
        let long_shoes = Suspect {
            shoes: Some("x".repeat(201)),
            ..Suspect::default()
        };
        assert!(error(NewAlert {
            suspects: vec![long_shoes],
            ..input()
        })
        .starts_with("suspects[0].shoes"));
    }

    #[test]
    fn occurred_at_may_not_be_in_the_future_beyond_clock_skew() {
        let soon = NOW + Duration::minutes(4);
        assert!(ValidAlert::parse(
            NewAlert {
                occurred_at: Some(soon),
                ..input()
            },
            store(),
            NOW
        )
        .is_ok());
        let later = NOW + Duration::minutes(10);
        assert_eq!(
            error(NewAlert {
                occurred_at: Some(later),
                ..input()
            }),
            "occurred_at must not be in the future"
        );
    }

    #[test]
    fn descriptor_fields_are_trimmed_and_blank_ones_dropped() {
        let suspect = Suspect {
            hair: Some("  short black ".into()),
            shoes: Some(" ".into()),
            ..Suspect::default()
        };
        let alert = ValidAlert::parse(
            NewAlert {
                suspects: vec![suspect],
                ..input()
            },
            store(),
            NOW,
        )
        .unwrap();
        assert_eq!(alert.suspects[0].hair.as_deref(), Some("short black"));
        assert_eq!(alert.suspects[0].shoes, None);
    }

    mod properties {
        use super::*;
        use crate::domain::arbitrary::{
            self, chars, is_clean, is_clean_multiline, number, optional_text, text,
        };
        use p4p_protocol::Alert;
        use proptest::prelude::*;

        fn suspect() -> impl Strategy<Value = Suspect> {
            let field = || optional_text(MAX_DESCRIPTOR_FIELD);
            (
                (field(), field(), field(), field(), field()),
                (field(), field(), field(), field()),
            )
                .prop_map(
                    |((sex, age, height, build, hair), (clothing, shoes, marks, notes))| Suspect {
                        sex,
                        age,
                        height,
                        build,
                        hair,
                        clothing,
                        shoes,
                        marks,
                        notes,
                    },
                )
        }

        fn vehicle() -> impl Strategy<Value = Vehicle> {
            let field = || optional_text(MAX_DESCRIPTOR_FIELD);
            (field(), field(), field(), field(), field(), field()).prop_map(
                |(make, model, color, plate, plate_region, notes)| Vehicle {
                    make,
                    model,
                    color,
                    plate,
                    plate_region,
                    notes,
                },
            )
        }

        fn location() -> impl Strategy<Value = Location> {
            (number(-90.0, 90.0), number(-180.0, 180.0))
                .prop_map(|(lat, lon)| Location { lat, lon })
        }

        /// A few descriptors, or as many as the limit allows and more.
        fn descriptors<S: Strategy>(
            item: impl Fn() -> S,
            max: usize,
        ) -> impl Strategy<Value = Vec<S::Value>> {
            prop_oneof![
                4 => proptest::collection::vec(item(), 0..=2),
                1 => proptest::collection::vec(item(), max - 1..=max + 2),
            ]
        }

        /// A new alert with every field arbitrary, NaN and infinities included.
        fn new_alert() -> impl Strategy<Value = NewAlert> {
            (
                proptest::sample::select(AlertKind::ALL.to_vec()),
                text(MAX_TITLE),
                optional_text(MAX_DESCRIPTION),
                proptest::option::of(-400_000_000i64..=2_000),
                proptest::option::of(location()),
                proptest::option::of(number(0.5, 500.0)),
                descriptors(suspect, MAX_SUSPECTS),
                descriptors(vehicle, MAX_VEHICLES),
            )
                .prop_map(
                    |(
                        kind,
                        title,
                        description,
                        seconds,
                        location,
                        radius_km,
                        suspects,
                        vehicles,
                    )| {
                        NewAlert {
                            kind,
                            title,
                            description,
                            occurred_at: seconds.map(|s| NOW + Duration::seconds(s)),
                            location,
                            radius_km,
                            suspects,
                            vehicles,
                        }
                    },
                )
        }

        /// A new alert's JSON body with any value in any field.
        fn new_alert_json() -> impl Strategy<Value = serde_json::Value> {
            use arbitrary::{float, shaped, string};
            let kinds: Vec<serde_json::Value> = AlertKind::ALL
                .iter()
                .map(|k| k.as_str().into())
                .chain(["heist".into()])
                .collect();
            let descriptors = |s: BoxedStrategy<serde_json::Value>| {
                prop_oneof![
                    4 => proptest::collection::vec(s.clone(), 0..=2),
                    1 => proptest::collection::vec(s, 9..=12),
                ]
                .prop_map(serde_json::Value::Array)
                .boxed()
            };
            shaped(vec![
                ("kind", proptest::sample::select(kinds).boxed()),
                ("title", string(MAX_TITLE)),
                ("description", string(MAX_DESCRIPTION)),
                (
                    "occurred_at",
                    prop_oneof![
                        4 => Just("2026-11-24T14:00:00Z".into()),
                        2 => Just("2026-11-24T15:04:59Z".into()),
                        2 => Just("2026-11-24T14:00:00+14:00".into()),
                        1 => Just("2026-11-24T15:05:01Z".into()),
                        1 => Just("yesterday".into()),
                    ]
                    .boxed(),
                ),
                ("location", arbitrary::location()),
                ("radius_km", float(0.5, 500.0)),
                (
                    "suspects",
                    descriptors(
                        shaped(vec![
                            ("hair", string(MAX_DESCRIPTOR_FIELD)),
                            ("shoes", string(MAX_DESCRIPTOR_FIELD)),
                            ("notes", string(MAX_DESCRIPTOR_FIELD)),
                        ])
                        .boxed(),
                    ),
                ),
                (
                    "vehicles",
                    descriptors(
                        shaped(vec![
                            ("plate", string(MAX_DESCRIPTOR_FIELD)),
                            ("color", string(MAX_DESCRIPTOR_FIELD)),
                        ])
                        .boxed(),
                    ),
                ),
            ])
        }

        fn store_place() -> Place {
            store()
        }

        /// Every limit of docs/API.md holds for an accepted alert.
        fn assert_within_limits(alert: &ValidAlert) {
            let title = chars(&alert.title);
            assert!((1..=MAX_TITLE).contains(&title), "title of {title}");
            assert!(is_clean(&alert.title), "{:?}", alert.title);
            if let Some(description) = &alert.description {
                let length = chars(description);
                assert!(
                    (1..=MAX_DESCRIPTION).contains(&length),
                    "description of {length}"
                );
                assert!(is_clean_multiline(description), "{description:?}");
            }
            assert!(alert.occurred_at <= NOW + CLOCK_SKEW);
            let radius = alert.reach.radius.km();
            assert!(
                radius.is_finite() && (0.5..=500.0).contains(&radius),
                "{radius}"
            );
            let (lat, lon) = (alert.reach.center.lat(), alert.reach.center.lon());
            assert!(lat.is_finite() && (-90.0..=90.0).contains(&lat), "{lat}");
            assert!(lon.is_finite() && (-180.0..=180.0).contains(&lon), "{lon}");
            assert!(alert.suspects.len() <= MAX_SUSPECTS);
            assert!(alert.vehicles.len() <= MAX_VEHICLES);
            let fields = alert
                .suspects
                .iter()
                .flat_map(|s| s.fields().map(|(_, v)| v.clone()))
                .chain(
                    alert
                        .vehicles
                        .iter()
                        .flat_map(|v| v.fields().map(|(_, v)| v.clone())),
                );
            for value in fields.flatten() {
                let length = chars(&value);
                assert!(
                    (1..=MAX_DESCRIPTOR_FIELD).contains(&length),
                    "field of {length}"
                );
                assert!(is_clean(&value), "{value:?}");
            }
        }

        /// A refusal names a field of the request.
        fn assert_names_a_field(error: &Invalid) {
            let known = [
                "title",
                "description",
                "occurred_at",
                "location.lat",
                "location.lon",
                "radius_km",
                "suspects",
                "vehicles",
            ];
            assert!(known.iter().any(|f| error.field.starts_with(f)), "{error}");
        }

        fn published(alert: &ValidAlert) -> Alert {
            let store = p4p_protocol::StoreRef {
                id: 1,
                name: "Main Street Jewelers".into(),
            };
            alert.first_version(1, store, p4p_protocol::AlertStatus::Published, None, NOW)
        }

        proptest! {
            #![proptest_config(arbitrary::config())]

            /// Arbitrary new alerts: never a panic; what is accepted keeps
            /// every limit, and a refusal names its field.
            #[test]
            fn any_new_alert_is_refused_or_within_the_limits(input in new_alert()) {
                match ValidAlert::parse(input, store_place(), NOW) {
                    Ok(alert) => assert_within_limits(&alert),
                    Err(error) => assert_names_a_field(&error),
                }
            }

            /// Arbitrary JSON bodies for POST /v1/alerts, as the server reads
            /// them: serde first, then the limits.
            #[test]
            fn any_json_body_is_refused_or_within_the_limits(body in new_alert_json()) {
                if let Ok(input) = serde_json::from_value::<NewAlert>(body) {
                    if let Ok(alert) = ValidAlert::parse(input, store_place(), NOW) {
                        assert_within_limits(&alert);
                    }
                }
            }

            /// An edit (PATCH /v1/alerts/{id}) of a valid alert, with any
            /// values, is checked by the same limits.
            #[test]
            fn any_edit_is_refused_or_within_the_limits(
                original in new_alert(),
                edit in new_alert(),
                present in proptest::collection::vec(any::<bool>(), 7),
            ) {
                let Ok(original) = ValidAlert::parse(original, store_place(), NOW) else {
                    return Ok(());
                };
                let patch = AlertPatch {
                    kind: present[0].then_some(edit.kind),
                    title: present[1].then(|| edit.title.clone()),
                    description: edit.description.clone().filter(|_| present[2]),
                    location: edit.location.filter(|_| present[3]),
                    radius_km: edit.radius_km.filter(|_| present[4]),
                    suspects: present[5].then(|| edit.suspects.clone()),
                    vehicles: present[6].then(|| edit.vehicles.clone()),
                };
                let input = patched(&published(&original), patch);
                match ValidAlert::parse(input, store_place(), NOW) {
                    Ok(alert) => assert_within_limits(&alert),
                    Err(error) => assert_names_a_field(&error),
                }
            }
        }
    }
}
