//! What every action's calls share: the client, the retry budget and the time the action is
//! taken ([`Ctx`]), and the field manager of Teflon's server-side applies.

use std::time::SystemTime;

use kube::Client;
use teflon_core::Timestamp;

use crate::events::Clock;
use crate::retry::Budget;

/// Field manager for server-side apply.
pub(crate) const FIELD_MANAGER: &str = "teflon";

/// What an action needs to make calls: the client, and the action's retry budget (its
/// deadline, and the retries spent so far over all of its calls).
pub(crate) struct Ctx<'a> {
    pub client: &'a Client,
    pub budget: &'a Budget<'a>,
    /// The time the action is taken, by the actuator's clock (annotations, deadlines).
    pub now: Timestamp,
}

/// `clock`'s time as a [`Timestamp`].
pub(crate) fn clock_now(clock: &Clock) -> Timestamp {
    let nanos = clock()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    Timestamp::from_nanos(nanos)
}
