//! Moderation: what staff may do to an alert, when an alert waits, and
//! what each change to an alert tells members and the moderation consoles
//! (the [`Notice`]s the storage layer appends as events, in order).

use p4p_protocol::{AlertStatus, Flag};

/// Why members see a flagged alert withdrawn.
pub const HELD_REASON: &str = "held for review after reports from member stores";
/// Why members see an edited alert withdrawn while its author is on probation.
pub const EDITED_REASON: &str = "edited; held until the association reviews the change";
/// What members are told of an alert an admin erased.
pub const ERASED_REASON: &str = "erased by the association";
/// What a retract of an alert past retention says once it is erased.
pub const EXPIRED_REASON: &str = "erased: past the retention period";

/// The statuses an alert is edited from.
pub const EDITABLE: [AlertStatus; 2] = [AlertStatus::Pending, AlertStatus::Published];

/// An event a change to an alert appends, for the storage layer to write:
/// what members and the moderation consoles are told of the change from
/// the alert as it was (`before`) to as it is (`after`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Notice<'a> {
    /// `alert`: the alert as it is now, published.
    Alert,
    /// `update`: the alert as it is now, and what changed since before.
    Update,
    /// `retract`, where members saw the alert before, saying why.
    Retract(Option<&'a str>),
    /// `pending`, for the moderation consoles: the alert as it waits now.
    Pending,
    /// `flag`, for the moderation consoles: a store's flag of the alert.
    Flag(&'a Flag),
}

/// A published alert taken back to pending: withdrawn where members saw
/// it, and waiting in the moderation consoles.
fn held(reason: &str) -> [Notice<'_>; 2] {
    [Notice::Retract(Some(reason)), Notice::Pending]
}

/// What posting an alert tells: `alert` when it is published at once,
/// `pending` when it waits.
pub fn posted(status: AlertStatus) -> Notice<'static> {
    if status == AlertStatus::Published {
        Notice::Alert
    } else {
        Notice::Pending
    }
}

/// What an edit does besides changing the content.
#[derive(Debug, Clone, PartialEq)]
pub struct EditPlan {
    /// The alert goes back to pending, with [`EDITED_REASON`].
    pub holds: bool,
    pub notices: Vec<Notice<'static>>,
}

/// An edit of an alert in an [`EDITABLE`] status `before`; `hold` when
/// its author's edits wait for a moderator (pre-moderation, probation).
/// Only a published alert is held; a pending one waits already.
pub fn plan_edit(before: AlertStatus, hold: bool) -> EditPlan {
    let holds = hold && before == AlertStatus::Published;
    let notices = if holds {
        // Withdrawn where it was seen, until a moderator approves the edit.
        held(EDITED_REASON).to_vec()
    } else if before == AlertStatus::Published {
        vec![Notice::Update]
    } else {
        vec![Notice::Pending]
    };
    EditPlan { holds, notices }
}

/// What a flag does.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagPlan<'a> {
    /// The flags reached the threshold: the alert goes back to pending,
    /// with [`HELD_REASON`].
    pub holds: bool,
    pub notices: Vec<Notice<'a>>,
}

/// A new flag of a published alert, which now has `unresolved` flags
/// (this one included) from different stores; `threshold` of them hold it.
pub fn plan_flag(flag: &Flag, unresolved: i64, threshold: u32) -> FlagPlan<'_> {
    let holds = unresolved >= i64::from(threshold);
    let mut notices = vec![Notice::Flag(flag)];
    if holds {
        notices.extend(held(HELD_REASON));
    }
    FlagPlan { holds, notices }
}

/// What an admin's erasure of an alert in status `before` tells: members
/// who may have shown it drop it; the admin's reason stays in the audit
/// trail, which members never read.
pub fn erasure_notices(before: AlertStatus) -> Vec<Notice<'static>> {
    if before == AlertStatus::Published {
        vec![Notice::Retract(Some(ERASED_REASON))]
    } else {
        Vec::new()
    }
}

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

    /// What members are told of the action: a retract says the
    /// moderator's `reason`; a rejected alert was never shown.
    pub fn notices(self, reason: Option<&str>) -> Vec<Notice<'_>> {
        match self {
            AlertAction::Approve => vec![Notice::Alert],
            AlertAction::Reject => Vec::new(),
            AlertAction::Retract => vec![Notice::Retract(reason)],
            AlertAction::Verify => vec![Notice::Update],
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
        assert_eq!(AlertAction::Reject.notices(Some("spam")), Vec::new());
        assert!(AlertAction::Retract.needs_reason());
    }

    #[test]
    fn actions_tell_members_what_they_did() {
        assert_eq!(AlertAction::Approve.notices(None), vec![Notice::Alert]);
        assert_eq!(AlertAction::Verify.notices(None), vec![Notice::Update]);
        assert_eq!(
            AlertAction::Retract.notices(Some("wrong shop")),
            vec![Notice::Retract(Some("wrong shop"))]
        );
    }

    #[test]
    fn a_new_alert_is_announced_or_waits() {
        assert_eq!(posted(AlertStatus::Published), Notice::Alert);
        assert_eq!(posted(AlertStatus::Pending), Notice::Pending);
    }

    #[test]
    fn an_edit_holds_only_a_published_alert_and_only_when_asked() {
        let held = plan_edit(AlertStatus::Published, true);
        assert!(held.holds);
        assert_eq!(
            held.notices,
            vec![Notice::Retract(Some(EDITED_REASON)), Notice::Pending]
        );
        let published = plan_edit(AlertStatus::Published, false);
        assert!(!published.holds);
        assert_eq!(published.notices, vec![Notice::Update]);
        for hold in [true, false] {
            let pending = plan_edit(AlertStatus::Pending, hold);
            assert!(!pending.holds, "a pending alert waits already");
            assert_eq!(pending.notices, vec![Notice::Pending]);
        }
        assert!(!EDITABLE.contains(&AlertStatus::Retracted));
    }

    #[test]
    fn flags_hold_an_alert_once_they_reach_the_threshold() {
        let flag = Flag {
            alert_id: 4,
            store_id: 2,
            reason: "duplicate".to_owned(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let below = plan_flag(&flag, 2, 3);
        assert!(!below.holds);
        assert_eq!(below.notices, vec![Notice::Flag(&flag)]);
        let reached = plan_flag(&flag, 3, 3);
        assert!(reached.holds);
        assert_eq!(
            reached.notices,
            vec![
                Notice::Flag(&flag),
                Notice::Retract(Some(HELD_REASON)),
                Notice::Pending
            ]
        );
        assert!(plan_flag(&flag, 1, 1).holds, "a threshold of one");
    }

    #[test]
    fn only_a_published_alert_is_retracted_when_erased() {
        assert_eq!(
            erasure_notices(AlertStatus::Published),
            vec![Notice::Retract(Some(ERASED_REASON))]
        );
        for status in [
            AlertStatus::Pending,
            AlertStatus::Rejected,
            AlertStatus::Retracted,
        ] {
            assert_eq!(erasure_notices(status), Vec::new());
        }
    }
}
