//! A pledge, checked; and the membership transitions.

use p4p_protocol::{Location, PledgeRequest, StoreStatus};

use super::place::{Area, Place, RadiusKm};
use super::{optional_line, required_line, Invalid};

/// A store's area of interest when its pledge names none.
pub const DEFAULT_STORE_RADIUS_KM: f64 = 25.0;
pub const MAX_STORE_NAME: usize = 120;
pub const MAX_ADDRESS: usize = 300;
pub const MAX_CONTACT_NAME: usize = 120;
pub const MAX_EMAIL: usize = 254;
pub const MAX_PHONE: usize = 40;
/// A store holds at most this many unrevoked tokens: enough for its
/// devices, browsers and systems, too few to multiply the per-token limits.
pub const MAX_STORE_TOKENS: usize = 10;

/// A membership application whose every field is within the limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidPledge {
    pub name: String,
    pub address: String,
    pub interest: Area,
    pub contact_name: String,
    pub contact_email: String,
    pub phone: Option<String>,
}

impl ValidPledge {
    pub fn parse(input: PledgeRequest) -> Result<Self, Invalid> {
        if !input.accept_pledge {
            return Err(Invalid::new(
                "accept_pledge",
                "must be true: membership requires accepting the Partner for Protection pledge",
            ));
        }
        let contact_email = required_line("contact_email", &input.contact_email, MAX_EMAIL)?;
        if !looks_like_email(&contact_email) {
            return Err(Invalid::new(
                "contact_email",
                "must be an email address like name@example.com",
            ));
        }
        Ok(ValidPledge {
            name: required_line("store_name", &input.store_name, MAX_STORE_NAME)?,
            address: required_line("address", &input.address, MAX_ADDRESS)?,
            interest: Area {
                center: Place::parse("location", input.location)?,
                radius: RadiusKm::parse(
                    "radius_km",
                    input.radius_km.unwrap_or(DEFAULT_STORE_RADIUS_KM),
                )?,
            },
            contact_name: required_line("contact_name", &input.contact_name, MAX_CONTACT_NAME)?,
            contact_email,
            phone: optional_line("phone", input.phone.as_deref(), MAX_PHONE)?,
        })
    }
}

/// One `@`, something on each side, a dot in the domain, no spaces.
fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(char::is_whitespace)
}

/// A staff action on a store's membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipAction {
    Approve,
    Reject,
    Suspend,
    Reinstate,
}

impl MembershipAction {
    /// The statuses the action starts from, and the one it leads to.
    pub fn transition(self) -> (&'static [StoreStatus], StoreStatus) {
        match self {
            MembershipAction::Approve => (&[StoreStatus::Pending], StoreStatus::Approved),
            MembershipAction::Reject => (&[StoreStatus::Pending], StoreStatus::Rejected),
            MembershipAction::Suspend => (&[StoreStatus::Approved], StoreStatus::Suspended),
            MembershipAction::Reinstate => (&[StoreStatus::Suspended], StoreStatus::Approved),
        }
    }

    /// Rejection and suspension must say why; the store is told.
    pub fn needs_reason(self) -> bool {
        matches!(self, MembershipAction::Reject | MembershipAction::Suspend)
    }

    /// The name in the audit trail.
    pub fn audit_name(self) -> &'static str {
        match self {
            MembershipAction::Approve => "store.approve",
            MembershipAction::Reject => "store.reject",
            MembershipAction::Suspend => "store.suspend",
            MembershipAction::Reinstate => "store.reinstate",
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            MembershipAction::Approve => "approve",
            MembershipAction::Reject => "reject",
            MembershipAction::Suspend => "suspend",
            MembershipAction::Reinstate => "reinstate",
        }
    }
}

/// A moderator's decision on the move a store asked for: a place is vetted,
/// at the pledge and at every move, so that no store reads another
/// region's stream by saying it is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveDecision {
    Approve,
    Reject,
}

impl MoveDecision {
    /// A rejection must say why (for the audit trail).
    pub fn needs_reason(self) -> bool {
        self == MoveDecision::Reject
    }

    /// How the audit entry (`store.move`) says it: the decision on the
    /// move to `to`, with the moderator's reason if any.
    pub fn audit_note(self, to: Location, reason: Option<&str>) -> String {
        let verdict = match self {
            MoveDecision::Approve => "approved",
            MoveDecision::Reject => "rejected",
        };
        let mut note = format!("{verdict} the move to {:.5}, {:.5}", to.lat, to.lon);
        if let Some(reason) = reason {
            note.push_str(": ");
            note.push_str(reason);
        }
        note
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_decision_names_the_place_and_the_reason() {
        let to = Location {
            lat: 40.123456,
            lon: -74.0,
        };
        assert_eq!(
            MoveDecision::Approve.audit_note(to, None),
            "approved the move to 40.12346, -74.00000"
        );
        assert_eq!(
            MoveDecision::Reject.audit_note(to, Some("too far")),
            "rejected the move to 40.12346, -74.00000: too far"
        );
    }

    fn pledge() -> PledgeRequest {
        PledgeRequest {
            store_name: "Main Street Jewelers".into(),
            address: "1 Main St, Springfield".into(),
            location: Location {
                lat: 40.0,
                lon: -74.0,
            },
            contact_name: "Ada Diamond".into(),
            contact_email: "ada@example.com".into(),
            phone: None,
            radius_km: None,
            accept_pledge: true,
        }
    }

    #[test]
    fn a_pledge_must_be_accepted() {
        let err = ValidPledge::parse(PledgeRequest {
            accept_pledge: false,
            ..pledge()
        })
        .unwrap_err();
        assert_eq!(err.field, "accept_pledge");
    }

    #[test]
    fn the_interest_radius_defaults_and_is_bounded() {
        let valid = ValidPledge::parse(pledge()).unwrap();
        assert_eq!(valid.interest.radius.km(), DEFAULT_STORE_RADIUS_KM);
        let err = ValidPledge::parse(PledgeRequest {
            radius_km: Some(600.0),
            ..pledge()
        })
        .unwrap_err();
        assert_eq!(err.field, "radius_km");
    }

    #[test]
    fn emails_are_checked_roughly() {
        for bad in [
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@.com",
        ] {
            let err = ValidPledge::parse(PledgeRequest {
                contact_email: bad.into(),
                ..pledge()
            })
            .unwrap_err();
            assert_eq!(err.field, "contact_email", "{bad}");
        }
    }

    #[test]
    fn transitions_start_from_the_right_status() {
        assert_eq!(
            MembershipAction::Approve.transition().0,
            &[StoreStatus::Pending]
        );
        assert_eq!(
            MembershipAction::Reinstate.transition().1,
            StoreStatus::Approved
        );
        assert!(MembershipAction::Suspend.needs_reason());
        assert!(!MembershipAction::Approve.needs_reason());
    }

    mod properties {
        use super::*;
        use crate::domain::arbitrary::{
            self, chars, float, is_clean, number, optional_text, shaped, string, text,
        };
        use proptest::prelude::*;

        /// An email: often well formed, with blanks, doubled `@` and dots
        /// in the wrong places mixed in.
        fn email() -> impl Strategy<Value = String> {
            prop_oneof![
                6 => "[a-z0-9._+-]{1,20}@[a-z0-9-]{1,20}\\.[a-z]{2,6}",
                1 => (text(20), text(20), text(5)).prop_map(|(l, d, t)| format!("{l}@{d}.{t}")),
                1 => "[a-z@. ]{0,12}",
                1 => text(MAX_EMAIL),
            ]
        }

        fn pledge_request() -> impl Strategy<Value = PledgeRequest> {
            (
                (
                    text(MAX_STORE_NAME),
                    text(MAX_ADDRESS),
                    text(MAX_CONTACT_NAME),
                ),
                (email(), optional_text(MAX_PHONE)),
                (number(-90.0, 90.0), number(-180.0, 180.0)),
                proptest::option::of(number(0.5, 500.0)),
                proptest::bool::weighted(0.9),
            )
                .prop_map(
                    |(
                        (store_name, address, contact_name),
                        (contact_email, phone),
                        (lat, lon),
                        radius_km,
                        accept_pledge,
                    )| {
                        PledgeRequest {
                            store_name,
                            address,
                            location: Location { lat, lon },
                            contact_name,
                            contact_email,
                            phone,
                            radius_km,
                            accept_pledge,
                        }
                    },
                )
        }

        fn pledge_json() -> impl Strategy<Value = serde_json::Value> {
            shaped(vec![
                ("store_name", string(MAX_STORE_NAME)),
                ("address", string(MAX_ADDRESS)),
                ("location", arbitrary::location()),
                ("contact_name", string(MAX_CONTACT_NAME)),
                (
                    "contact_email",
                    email().prop_map(serde_json::Value::String).boxed(),
                ),
                ("phone", string(MAX_PHONE)),
                ("radius_km", float(0.5, 500.0)),
                (
                    "accept_pledge",
                    proptest::bool::weighted(0.9)
                        .prop_map(serde_json::Value::Bool)
                        .boxed(),
                ),
            ])
        }

        fn assert_within_limits(pledge: &ValidPledge) {
            for (value, min, max) in [
                (&pledge.name, 1, MAX_STORE_NAME),
                (&pledge.address, 1, MAX_ADDRESS),
                (&pledge.contact_name, 1, MAX_CONTACT_NAME),
                (&pledge.contact_email, 1, MAX_EMAIL),
            ] {
                assert!((min..=max).contains(&chars(value)), "{value:?}");
                assert!(is_clean(value), "{value:?}");
            }
            assert!(pledge.contact_email.contains('@'));
            assert!(!pledge.contact_email.chars().any(char::is_whitespace));
            if let Some(phone) = &pledge.phone {
                assert!((1..=MAX_PHONE).contains(&chars(phone)) && is_clean(phone));
            }
            let radius = pledge.interest.radius.km();
            assert!(
                radius.is_finite() && (0.5..=500.0).contains(&radius),
                "{radius}"
            );
            let (lat, lon) = (pledge.interest.center.lat(), pledge.interest.center.lon());
            assert!(lat.is_finite() && (-90.0..=90.0).contains(&lat), "{lat}");
            assert!(lon.is_finite() && (-180.0..=180.0).contains(&lon), "{lon}");
        }

        proptest! {
            #![proptest_config(arbitrary::config())]

            /// Arbitrary pledges: never a panic; an accepted one keeps every
            /// limit; one that does not accept the pledge is always refused.
            #[test]
            fn any_pledge_is_refused_or_within_the_limits(input in pledge_request()) {
                let accepted = input.accept_pledge;
                match ValidPledge::parse(input) {
                    Ok(pledge) => {
                        assert!(accepted);
                        assert_within_limits(&pledge);
                    }
                    Err(error) => assert!(!error.field.is_empty()),
                }
            }

            /// Arbitrary JSON bodies for POST /v1/pledge.
            #[test]
            fn any_json_pledge_is_refused_or_within_the_limits(body in pledge_json()) {
                if let Ok(input) = serde_json::from_value::<PledgeRequest>(body) {
                    if let Ok(pledge) = ValidPledge::parse(input) {
                        assert_within_limits(&pledge);
                    }
                }
            }
        }
    }
}
