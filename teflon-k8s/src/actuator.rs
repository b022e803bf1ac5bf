//! The write port: [`KubeActuator`] executes planned actions against the API server.
//!
//! The dispatcher sits on top: it builds the action's [`Ctx`] and hands it to the module of
//! the action (`delete`, `evict`, `quarantine`, `block_binary`), which only look down, at the
//! helpers they share (`ctx`, `owner`, `annotations`, `names`, `retry`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use teflon_core::{Action, ActionKind, Actuator, Executed, Outcome, PlannedAction};

use crate::ctx::{Ctx, clock_now};
use crate::events::{Clock, EventRecorder, EventSpec, default_reporting_instance, truncate};
use crate::recreation::RecreationHandle;
use crate::retry::{Budget, RetryPolicy};
use crate::{block_binary, delete, evict, quarantine};

/// Executes [`PlannedAction`]s against the API server.
///
/// Every action is preconditioned on the pod's UID (or idempotent by name); its calls are
/// retried with jittered exponential backoff on 5xx, throttling 429, write conflicts,
/// timeouts and connection errors until the action's deadline
/// ([`PlannedAction::deadline`], at most [`RetryPolicy::total`]), across an API server
/// outage; then it is recorded as an `events.k8s.io/v1` Event. Build the client with
/// [`crate::client`], which turns the kube client's own retries off.
#[derive(Clone)]
pub struct KubeActuator {
    client: Client,
    retry: RetryPolicy,
    events: EventRecorder,
    recreation: Option<RecreationHandle>,
}

impl fmt::Debug for KubeActuator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeActuator")
            .field("retry", &self.retry)
            .field("events", &self.events)
            .field("recreation", &self.recreation.is_some())
            .finish_non_exhaustive()
    }
}

impl KubeActuator {
    /// An actuator with the default retry policy; Events name `POD_NAME` (else `HOSTNAME`)
    /// as the reporting instance.
    pub fn new(client: Client) -> Self {
        let retry = RetryPolicy::default();
        KubeActuator {
            events: EventRecorder {
                client: client.clone(),
                instance: default_reporting_instance(),
                clock: Arc::new(SystemTime::now),
                retry: RetryPolicy::events(),
            },
            client,
            retry,
            recreation: None,
        }
    }

    /// Use this retry policy for actions (Events keep [`RetryPolicy::events`]: an Event is
    /// worth one retry, not a delayed outcome). Its `total` caps the action's own deadline.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Set the Events' `reportingInstance`.
    pub fn with_reporting_instance(mut self, instance: impl Into<String>) -> Self {
        self.events.instance = truncate(&instance.into(), 128);
        self
    }

    /// Read Event times from `clock` (tests pin it).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.events.clock = clock;
        self
    }

    /// Report time to recreation of workloads whose pods this actuator reaps.
    pub fn with_recreation(mut self, recreation: RecreationHandle) -> Self {
        self.recreation = Some(recreation);
        self
    }

    /// Time left until the action's deadline, by this actuator's clock.
    fn time_left(&self, a: &PlannedAction) -> Duration {
        a.deadline.since(clock_now(&self.events.clock))
    }

    async fn run(&self, a: &PlannedAction, budget: &Budget<'_>) -> Outcome {
        let ctx = Ctx {
            client: &self.client,
            budget,
            now: clock_now(&self.events.clock),
        };
        match &a.action {
            Action::Delete { grace_period_secs } => {
                delete::delete(&ctx, &a.pod, *grace_period_secs).await
            }
            Action::Evict { grace_period_secs } => {
                evict::evict(&ctx, &a.pod, *grace_period_secs).await
            }
            Action::Quarantine {
                labels,
                network_isolate,
                expire_after,
            } => quarantine::quarantine(&ctx, a, labels, *network_isolate, *expire_after).await,
            Action::BlockBinary { .. } => block_binary::block_binary(&ctx, a).await,
            Action::Log => Outcome::Success,
        }
    }
}

/// What the Event is about: the pod, or for `block_binary` the workload.
fn regarding(a: &PlannedAction) -> ObjectReference {
    if let (ActionKind::BlockBinary, Some(w)) = (a.action.kind(), &a.workload)
        && let Some(api_version) = w.kind.api_version()
    {
        return ObjectReference {
            api_version: Some(api_version.to_owned()),
            kind: Some(w.kind.as_str().to_owned()),
            namespace: Some(w.namespace.clone()),
            name: Some(w.name.clone()),
            ..ObjectReference::default()
        };
    }
    ObjectReference {
        api_version: Some("v1".to_owned()),
        kind: Some("Pod".to_owned()),
        namespace: Some(a.pod.namespace.clone()),
        name: Some(a.pod.name.clone()),
        uid: a.pod.uid.clone(),
        ..ObjectReference::default()
    }
}

/// The Event's note: rule, priority, target, outcome.
pub(crate) fn event_note(a: &PlannedAction, outcome: &Outcome) -> String {
    let mut note = format!(
        "{} pod {}/{} for rule \"{}\" ({}): {}",
        a.action.kind(),
        a.pod.namespace,
        a.pod.name,
        a.alert.rule,
        a.alert.priority,
        outcome
    );
    if let Some(b) = &a.binary {
        note.push_str(&format!(" [binary {b}]"));
    }
    note
}

impl Actuator for KubeActuator {
    async fn execute(&self, a: &PlannedAction) -> Executed {
        if matches!(a.action, Action::Log) {
            return Outcome::Success.into();
        }
        let before = self.recreation.as_ref().and_then(|r| r.before(a));
        let budget = Budget::new(&self.retry, Some(self.time_left(a)));
        let outcome = self.run(a, &budget).await;
        let attempts = budget.attempts();
        tracing::info!(
            action = %a.action.kind(), namespace = %a.pod.namespace, pod = %a.pod.name,
            policy = %a.policy, outcome = %outcome, attempts, "action executed"
        );
        // Off the outcome's path: the outcome (and its audit record) does not wait for the
        // Events API, whose failure never changes it anyway.
        let events = self.events.clone();
        let event = EventSpec {
            regarding: regarding(a),
            action: a.action.kind().as_str().to_owned(),
            reason: a.policy.to_string(),
            note: event_note(a, &outcome),
            warning: !matches!(outcome, Outcome::Success | Outcome::Gone),
        };
        tokio::spawn(async move { events.record(event).await });
        if outcome == Outcome::Success
            && a.action.kind().is_disruptive()
            && let (Some(r), Some(before)) = (&self.recreation, before)
        {
            r.reaped(before);
        }
        Executed { outcome, attempts }
    }
}
