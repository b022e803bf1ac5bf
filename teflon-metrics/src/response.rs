//! Events of the response lifecycle: releases (by an operator, or on expiry) and the
//! delivery of notifications.

use std::sync::Arc;

use metrics::{SharedString, counter, describe_counter};
use teflon_core::{ActionKind, ReleaseCause, ReleaseOutcome};

use crate::names::{self, label};

/// A release ended.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseRecorded<'a> {
    /// What it undid: `quarantine` or `block_binary`.
    pub action: ActionKind,
    /// `operator` or `expired`.
    pub cause: ReleaseCause,
    /// How it ended.
    pub outcome: &'a ReleaseOutcome,
}

impl ReleaseRecorded<'_> {
    /// Count it.
    pub fn emit(self) {
        counter!(
            names::RELEASES_TOTAL,
            label::ACTION => self.action.as_str(),
            label::CAUSE => self.cause.as_str(),
            label::OUTCOME => self.outcome.as_str()
        )
        .increment(1);
    }
}

/// What became of one notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyResult {
    /// The sink answered 2xx.
    Sent,
    /// Given up after the retries (or refused for good, a 4xx other than 408/429).
    Failed,
    /// Not queued: the sink's queue was full (the sink is slow or down).
    Dropped,
}

impl NotifyResult {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            NotifyResult::Sent => "sent",
            NotifyResult::Failed => "failed",
            NotifyResult::Dropped => "dropped",
        }
    }
}

/// A notification reached its end (sent, failed, dropped).
#[derive(Debug, Clone)]
pub struct NotificationDone {
    /// The sink's configured name (bounded: one per configured sink).
    pub sink: Arc<str>,
    /// What became of it.
    pub result: NotifyResult,
}

impl NotificationDone {
    /// Count it.
    pub fn emit(self) {
        counter!(names::NOTIFICATIONS_TOTAL, label::SINK => SharedString::from(self.sink), label::RESULT => self.result.as_str())
            .increment(1);
    }
}

/// Help texts of these metrics (the exporter calls it).
pub fn describe() {
    describe_counter!(
        names::RELEASES_TOTAL,
        "Releases of quarantines and block_binary policies, by action, cause and outcome."
    );
    describe_counter!(
        names::NOTIFICATIONS_TOTAL,
        "Notifications, by sink and result (sent, failed after retries, dropped when the sink's queue was full)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Exporter;

    #[test]
    fn releases_and_notifications_are_counted_with_bounded_labels() {
        let (recorder, exporter) = Exporter::unregistered().unwrap();
        metrics::with_local_recorder(&recorder, || {
            describe();
            ReleaseRecorded {
                action: ActionKind::Quarantine,
                cause: ReleaseCause::Expired,
                outcome: &ReleaseOutcome::Released,
            }
            .emit();
            for result in [
                NotifyResult::Sent,
                NotifyResult::Dropped,
                NotifyResult::Dropped,
            ] {
                NotificationDone {
                    sink: Arc::from("slack-secops"),
                    result,
                }
                .emit();
            }
        });
        let text = exporter.render();
        assert!(
            text.contains(
                r#"teflon_releases_total{action="quarantine",cause="expired",outcome="released"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"teflon_notifications_total{sink="slack-secops",result="dropped"} 2"#),
            "{text}"
        );
    }
}
