//! The p4p wire contract (`docs/API.md`, v1) as serde types.
//!
//! These types say what travels on the wire and nothing more: a request type
//! accepts anything well-formed, and the server turns it into checked domain
//! values. Responses and stream frames are what clients read; every client
//! must ignore fields and frame types it does not know, so none of these
//! types deny unknown fields.

/// Declares an enumeration of names the wire carries (`"grab_and_run"`),
/// once: serde and strum both spell every variant in `snake_case`, so JSON,
/// `Display`, `FromStr` and `as_str` agree, and `ALL` lists the variants
/// in the order declared. The `#[strum(parse_err_fn = f)]` each declaration
/// gives words the `FromStr` error for an unknown name (`f(name) -> String`).
macro_rules! wire_enum {
    (
        $(#[$attribute:meta])*
        pub enum $name:ident { $($(#[$variant_attribute:meta])* $variant:ident,)* }
    ) => {
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            serde::Serialize,
            serde::Deserialize,
            strum::Display,
            strum::EnumString,
            strum::IntoStaticStr,
            strum::VariantArray,
        )]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case", parse_err_ty = String)]
        $(#[$attribute])*
        pub enum $name {
            $($(#[$variant_attribute])* $variant,)*
        }

        impl $name {
            /// Every variant, in the order declared.
            pub const ALL: &'static [$name] = <$name as strum::VariantArray>::VARIANTS;

            /// The name on the wire.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    };
}

mod alert;
mod frame;
mod membership;
mod moderation;
#[cfg(feature = "openapi")]
pub mod openapi;
mod problem;

pub use alert::*;
pub use frame::*;
pub use membership::*;
pub use moderation::*;
pub use problem::*;

use serde::{Deserialize, Serialize};

/// A point on the earth in WGS 84 degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Location {
    #[cfg_attr(feature = "openapi", schema(minimum = -90.0, maximum = 90.0))]
    pub lat: f64,
    #[cfg_attr(feature = "openapi", schema(minimum = -180.0, maximum = 180.0))]
    pub lon: f64,
}

/// RFC 3339 timestamps in UTC, as the wire carries them.
pub type Timestamp = time::OffsetDateTime;

/// Serde helpers for RFC 3339 timestamps.
pub mod rfc3339 {
    pub use time::serde::rfc3339::*;
}

wire_enum! {
    /// The role a token acts in.
    #[strum(parse_err_fn = unknown_role)]
    pub enum Role {
        /// An approved member store.
        Store,
        /// Association staff.
        Moderator,
        /// Staff who can also manage staff tokens.
        Admin,
    }
}

impl Role {
    /// Moderators and admins: association staff.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Moderator | Role::Admin)
    }
}

fn unknown_role(text: &str) -> String {
    unknown("role", text, Role::ALL)
}

/// `unknown role `owner`, expected store, moderator or admin`.
fn unknown<T: Copy + Into<&'static str>>(what: &str, text: &str, known: &[T]) -> String {
    let names: Vec<&str> = known.iter().map(|&value| value.into()).collect();
    let expected = match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, others)) => format!("{} or {last}", others.join(", ")),
        None => String::new(),
    };
    format!("unknown {what} `{text}`, expected {expected}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant's name as JSON, `Display`, `as_str` and `FromStr` read it.
    fn names_agree<T>(all: &[T])
    where
        T: Copy + std::fmt::Debug + PartialEq + Serialize + std::fmt::Display,
        T: std::str::FromStr<Err = String> + Into<&'static str>,
    {
        for &value in all {
            let name: &'static str = value.into();
            assert_eq!(serde_json::to_value(value).ok(), Some(name.into()));
            assert_eq!(value.to_string(), name);
            assert_eq!(name.parse::<T>(), Ok(value));
        }
    }

    #[test]
    fn the_wire_names_are_the_serde_names() {
        names_agree(AlertKind::ALL);
        names_agree(AlertStatus::ALL);
        names_agree(StoreStatus::ALL);
        names_agree(Role::ALL);
        assert_eq!(AlertKind::DistractionTheft.as_str(), "distraction_theft");
        assert_eq!(AlertKind::ALL.len(), 9);
        assert_eq!(
            AlertStatus::ALL,
            [
                AlertStatus::Pending,
                AlertStatus::Published,
                AlertStatus::Rejected,
                AlertStatus::Retracted
            ]
        );
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_known_ones() {
        let refusals = [
            (
                "heist".parse::<AlertKind>().err(),
                "unknown alert kind `heist`, expected one of casing, distraction_theft, \
                 grab_and_run, smash_and_grab, burglary, robbery, fraud, suspicious_vehicle, other",
            ),
            (
                "Pending".parse::<AlertStatus>().err(),
                "unknown alert status `Pending`, expected pending, published, rejected or retracted",
            ),
            (
                "closed".parse::<StoreStatus>().err(),
                "unknown store status `closed`, expected pending, approved, rejected or suspended",
            ),
            (
                "owner".parse::<Role>().err(),
                "unknown role `owner`, expected store, moderator or admin",
            ),
        ];
        for (refusal, expected) in refusals {
            assert_eq!(refusal.as_deref(), Some(expected));
        }
    }
}
