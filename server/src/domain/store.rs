//! A pledge, checked; and the membership transitions.

use p4p_protocol::{PledgeRequest, StoreStatus};

use super::place::{Area, Place, RadiusKm};
use super::{optional_text, required_text, Invalid};

/// A store's area of interest when its pledge names none.
pub const DEFAULT_STORE_RADIUS_KM: f64 = 25.0;
pub const MAX_STORE_NAME: usize = 120;
pub const MAX_ADDRESS: usize = 300;
pub const MAX_CONTACT_NAME: usize = 120;
pub const MAX_EMAIL: usize = 254;
pub const MAX_PHONE: usize = 40;

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
        let contact_email = required_text("contact_email", &input.contact_email, MAX_EMAIL)?;
        if !looks_like_email(&contact_email) {
            return Err(Invalid::new(
                "contact_email",
                "must be an email address like name@example.com",
            ));
        }
        Ok(ValidPledge {
            name: required_text("store_name", &input.store_name, MAX_STORE_NAME)?,
            address: required_text("address", &input.address, MAX_ADDRESS)?,
            interest: Area {
                center: Place::parse("location", input.location)?,
                radius: RadiusKm::parse(
                    "radius_km",
                    input.radius_km.unwrap_or(DEFAULT_STORE_RADIUS_KM),
                )?,
            },
            contact_name: required_text("contact_name", &input.contact_name, MAX_CONTACT_NAME)?,
            contact_email,
            phone: optional_text("phone", input.phone.as_deref(), MAX_PHONE)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use p4p_protocol::Location;

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
}
