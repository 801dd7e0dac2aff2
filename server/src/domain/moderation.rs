//! Moderation: what staff may do to an alert, and when an alert waits.

use p4p_protocol::AlertStatus;

use super::delivery::EventKind;

/// A moderation action on an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    Approve,
    Reject,
    Retract,
    Verify,
}

impl AlertAction {
    /// The statuses the action starts from, and the one it leads to.
    pub fn transition(self) -> (&'static [AlertStatus], AlertStatus) {
        match self {
            AlertAction::Approve => (&[AlertStatus::Pending], AlertStatus::Published),
            AlertAction::Reject => (&[AlertStatus::Pending], AlertStatus::Rejected),
            AlertAction::Retract => (&[AlertStatus::Published], AlertStatus::Retracted),
            AlertAction::Verify => (&[AlertStatus::Published], AlertStatus::Published),
        }
    }

    /// What members are told: the event the action appends, if any.
    pub fn event(self) -> Option<EventKind> {
        match self {
            AlertAction::Approve => Some(EventKind::Alert),
            AlertAction::Reject => None,
            AlertAction::Retract => Some(EventKind::Retract),
            AlertAction::Verify => Some(EventKind::Update),
        }
    }

    /// Rejecting and retracting must say why: the author and members are told.
    pub fn needs_reason(self) -> bool {
        matches!(self, AlertAction::Reject | AlertAction::Retract)
    }

    pub fn audit_name(self) -> &'static str {
        match self {
            AlertAction::Approve => "alert.approve",
            AlertAction::Reject => "alert.reject",
            AlertAction::Retract => "alert.retract",
            AlertAction::Verify => "alert.verify",
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            AlertAction::Approve => "approve",
            AlertAction::Reject => "reject",
            AlertAction::Retract => "retract",
            AlertAction::Verify => "verify",
        }
    }
}

/// When alerts are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModerationMode {
    /// Publish at once; staff review afterwards.
    Post,
    /// Every alert waits for a moderator.
    Pre,
}

/// The association's moderation policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub mode: ModerationMode,
    /// A store's first this many alerts wait for a moderator.
    pub probation_alerts: u32,
    /// Flags from this many different stores move an alert back to pending.
    pub flag_threshold: u32,
    /// Alerts older than this leave members' views.
    pub retention_days: u32,
}

impl Policy {
    /// The status of a new alert from a store that has had
    /// `published_before` alerts published.
    pub fn status_of_new_alert(&self, published_before: i64) -> AlertStatus {
        let on_probation = published_before < i64::from(self.probation_alerts);
        if self.mode == ModerationMode::Pre || on_probation {
            AlertStatus::Pending
        } else {
            AlertStatus::Published
        }
    }

    /// Alerts that happened before this (unix seconds) are past retention.
    pub fn retention_cutoff(&self, now: time::OffsetDateTime) -> i64 {
        (now - time::Duration::days(i64::from(self.retention_days))).unix_timestamp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: ModerationMode, probation_alerts: u32) -> Policy {
        Policy {
            mode,
            probation_alerts,
            flag_threshold: 3,
            retention_days: 365,
        }
    }

    #[test]
    fn a_store_on_probation_waits_and_pre_moderation_always_waits() {
        let post = policy(ModerationMode::Post, 3);
        assert_eq!(post.status_of_new_alert(0), AlertStatus::Pending);
        assert_eq!(post.status_of_new_alert(2), AlertStatus::Pending);
        assert_eq!(post.status_of_new_alert(3), AlertStatus::Published);
        assert_eq!(
            policy(ModerationMode::Post, 0).status_of_new_alert(0),
            AlertStatus::Published
        );
        assert_eq!(
            policy(ModerationMode::Pre, 0).status_of_new_alert(100),
            AlertStatus::Pending
        );
    }

    #[test]
    fn actions_start_from_the_right_status() {
        assert_eq!(AlertAction::Approve.transition().0, &[AlertStatus::Pending]);
        assert_eq!(
            AlertAction::Retract.transition().0,
            &[AlertStatus::Published]
        );
        assert_eq!(AlertAction::Verify.transition().1, AlertStatus::Published);
        assert_eq!(AlertAction::Reject.event(), None);
        assert!(AlertAction::Retract.needs_reason());
    }
}
