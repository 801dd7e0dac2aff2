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

/// A new alert's status, and why it waits when it does: its author is told
/// (`status_reason`), so that a held alert is not a mystery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub status: AlertStatus,
    pub reason: Option<String>,
}

impl Policy {
    /// The status of a new alert from a store that has had
    /// `published_before` alerts published. Nothing but a moderator ends
    /// a hold, so the reason names no time.
    pub fn status_of_new_alert(&self, published_before: i64) -> Admission {
        let probation = i64::from(self.probation_alerts);
        let reason = if self.mode == ModerationMode::Pre {
            Some("held for review: every alert waits until a moderator approves it".to_owned())
        } else if published_before < probation {
            let first = match probation {
                1 => "first alert waits".to_owned(),
                n => format!("first {n} alerts wait"),
            };
            Some(format!(
                "new member: held until a moderator approves it (probation: a new store's \
                 {first} for review; {published_before} published so far)"
            ))
        } else {
            None
        };
        Admission {
            status: if reason.is_some() {
                AlertStatus::Pending
            } else {
                AlertStatus::Published
            },
            reason,
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
        let status = |policy: Policy, before| policy.status_of_new_alert(before).status;
        assert_eq!(status(post, 0), AlertStatus::Pending);
        assert_eq!(status(post, 2), AlertStatus::Pending);
        assert_eq!(status(post, 3), AlertStatus::Published);
        assert_eq!(
            status(policy(ModerationMode::Post, 0), 0),
            AlertStatus::Published
        );
        assert_eq!(
            status(policy(ModerationMode::Pre, 0), 100),
            AlertStatus::Pending
        );
    }

    #[test]
    fn a_held_alert_says_why_and_a_published_one_says_nothing() {
        let probation = policy(ModerationMode::Post, 3).status_of_new_alert(1);
        let reason = probation.reason.expect("a reason");
        assert!(
            reason.starts_with("new member: held until a moderator approves it"),
            "{reason}"
        );
        assert!(
            reason.contains("first 3 alerts wait") && reason.contains("; 1 published so far"),
            "{reason}"
        );
        let pre = policy(ModerationMode::Pre, 0).status_of_new_alert(9);
        assert!(pre.reason.expect("a reason").contains("every alert waits"));
        assert_eq!(
            policy(ModerationMode::Post, 3)
                .status_of_new_alert(3)
                .reason,
            None
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
