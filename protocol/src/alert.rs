use serde::{Deserialize, Serialize};

use crate::{Location, Timestamp};

wire_enum! {
    /// What happened, or what was seen.
    #[strum(parse_err_fn = unknown_kind)]
    pub enum AlertKind {
        Casing,
        DistractionTheft,
        GrabAndRun,
        SmashAndGrab,
        Burglary,
        Robbery,
        Fraud,
        SuspiciousVehicle,
        Other,
    }
}

impl AlertKind {
    /// The reach of an alert of this kind when its author names none (docs/API.md).
    pub fn default_radius_km(self) -> f64 {
        match self {
            AlertKind::Casing => 25.0,
            AlertKind::SuspiciousVehicle => 15.0,
            AlertKind::Burglary => 40.0,
            _ => 50.0,
        }
    }
}

fn unknown_kind(text: &str) -> String {
    let known: Vec<&str> = AlertKind::ALL.iter().map(|kind| kind.as_str()).collect();
    format!(
        "unknown alert kind `{text}`, expected one of {}",
        known.join(", ")
    )
}

wire_enum! {
    /// Where an alert stands in moderation.
    #[strum(parse_err_fn = unknown_status)]
    pub enum AlertStatus {
        Pending,
        Published,
        Rejected,
        Retracted,
    }
}

fn unknown_status(text: &str) -> String {
    crate::unknown("alert status", text, AlertStatus::ALL)
}

/// A description of one suspect; every field is optional free text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Suspect {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<200>))]
    pub sex: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<200>))]
    pub age: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<200>))]
    pub height: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<200>))]
    pub build: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<200>))]
    pub hair: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<200>))]
    pub clothing: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<200>))]
    pub shoes: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<200>))]
    pub marks: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<200>))]
    pub notes: Option<String>,
}

impl Suspect {
    /// The field names, in the order the wire and the CLI list them.
    pub const FIELDS: [&'static str; 9] = [
        "sex", "age", "height", "build", "hair", "clothing", "shoes", "marks", "notes",
    ];

    /// Every field with its name, for validation and display.
    pub fn fields(&self) -> [(&'static str, &Option<String>); 9] {
        [
            ("sex", &self.sex),
            ("age", &self.age),
            ("height", &self.height),
            ("build", &self.build),
            ("hair", &self.hair),
            ("clothing", &self.clothing),
            ("shoes", &self.shoes),
            ("marks", &self.marks),
            ("notes", &self.notes),
        ]
    }

    /// The field called `name`, to fill it in.
    pub fn field_mut(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "sex" => &mut self.sex,
            "age" => &mut self.age,
            "height" => &mut self.height,
            "build" => &mut self.build,
            "hair" => &mut self.hair,
            "clothing" => &mut self.clothing,
            "shoes" => &mut self.shoes,
            "marks" => &mut self.marks,
            "notes" => &mut self.notes,
            _ => return None,
        })
    }
}

/// A description of one vehicle; every field is optional free text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Vehicle {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<200>))]
    pub make: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<200>))]
    pub model: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<200>))]
    pub color: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<200>))]
    pub plate: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<200>))]
    pub plate_region: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<200>))]
    pub notes: Option<String>,
}

impl Vehicle {
    /// The field names, in the order the wire and the CLI list them.
    pub const FIELDS: [&'static str; 6] =
        ["make", "model", "color", "plate", "plate_region", "notes"];

    /// Every field with its name, for validation and display.
    pub fn fields(&self) -> [(&'static str, &Option<String>); 6] {
        [
            ("make", &self.make),
            ("model", &self.model),
            ("color", &self.color),
            ("plate", &self.plate),
            ("plate_region", &self.plate_region),
            ("notes", &self.notes),
        ]
    }

    /// The field called `name`, to fill it in.
    pub fn field_mut(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "make" => &mut self.make,
            "model" => &mut self.model,
            "color" => &mut self.color,
            "plate" => &mut self.plate,
            "plate_region" => &mut self.plate_region,
            "notes" => &mut self.notes,
            _ => return None,
        })
    }
}

/// `POST /v1/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewAlert {
    pub kind: AlertKind,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::required_text::<120>))]
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_multiline_text::<4000>))]
    pub description: Option<String>,
    /// Defaults to now; not in the future.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub occurred_at: Option<Timestamp>,
    /// Defaults to the posting store's own location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Defaults to the kind's default radius.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0.5, maximum = 500.0))]
    pub radius_km: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 10))]
    pub suspects: Vec<Suspect>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 10))]
    pub vehicles: Vec<Vehicle>,
}

/// The store an alert came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoreRef {
    pub id: i64,
    pub name: String,
}

/// An alert, as members and staff see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alert {
    pub id: i64,
    pub kind: AlertKind,
    pub status: AlertStatus,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub occurred_at: Timestamp,
    pub location: Location,
    pub radius_km: f64,
    #[serde(default)]
    pub suspects: Vec<Suspect>,
    #[serde(default)]
    pub vehicles: Vec<Vehicle>,
    pub store: StoreRef,
    #[serde(default)]
    pub verified: bool,
    /// 1 on creation, +1 on every change to what this object shows; the
    /// `ETag` of its responses, for `If-Match`.
    #[serde(default = "first_version")]
    pub version: i64,
    /// Why it was rejected, retracted or held: shown to its author and staff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

fn first_version() -> i64 {
    1
}

/// `POST /v1/alerts/{id}/erase`: what is left of an erased alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErasedAlert {
    pub alert_id: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub erased_at: Timestamp,
    pub reason: String,
}

/// `GET /v1/alerts`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertPage {
    pub alerts: Vec<Alert>,
    /// Pass as `before_id` for the next page; `null` on the last one.
    pub next_before_id: Option<i64>,
}
