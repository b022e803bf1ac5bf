//! `events.k8s.io/v1` Events: what Teflon did to which object, why, and how it went.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};

use crate::retry::{RetryPolicy, with_retry};

/// `reportingController` of every Event Teflon writes.
pub const REPORTING_CONTROLLER: &str = "teflon.io/teflon";

/// Where "now" comes from (a fixed clock in tests).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The `reportingInstance`: `POD_NAME`, else `HOSTNAME`, else `teflon`.
pub fn default_reporting_instance() -> String {
    ["POD_NAME", "HOSTNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty())
        .map_or_else(|| "teflon".to_owned(), |v| truncate(&v, 128))
}

pub(crate) fn truncate(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_owned();
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// One Event to record.
#[derive(Debug, Clone)]
pub(crate) struct EventSpec {
    pub regarding: ObjectReference,
    /// The action kind (`delete`, `evict`…).
    pub action: String,
    /// The deciding policy.
    pub reason: String,
    pub note: String,
    pub warning: bool,
}

/// Writes Events; a failure is logged and never changes an action's outcome.
#[derive(Clone)]
pub(crate) struct EventRecorder {
    pub client: Client,
    pub instance: String,
    pub clock: Clock,
    pub retry: RetryPolicy,
}

impl fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventRecorder")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl EventRecorder {
    /// Events through `client`, naming `POD_NAME` (else `HOSTNAME`) as the reporting
    /// instance, timed by the system clock, retried as [`RetryPolicy::events`].
    pub(crate) fn new(client: Client) -> Self {
        EventRecorder {
            client,
            instance: default_reporting_instance(),
            clock: Arc::new(SystemTime::now),
            retry: RetryPolicy::events(),
        }
    }

    pub(crate) fn build(&self, spec: EventSpec) -> Event {
        let now = (self.clock)();
        let ts = Timestamp::try_from(now).unwrap_or(Timestamp::UNIX_EPOCH);
        let nanos = ts.as_nanosecond();
        let ns = spec
            .regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let base = spec
            .regarding
            .name
            .clone()
            .unwrap_or_else(|| "teflon".to_owned());
        // kubectl's convention, `<object>.<hex nanos>`, bounded to a DNS subdomain.
        let name = format!("{}.{:x}", truncate(&base, 253 - 1 - 16), nanos);
        Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(ns),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(ts)),
            reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
            reporting_instance: Some(self.instance.clone()),
            action: Some(truncate(&spec.action, 128)),
            reason: Some(truncate(&spec.reason, 128)),
            note: Some(truncate(&spec.note, 1024)),
            type_: Some(if spec.warning { "Warning" } else { "Normal" }.to_owned()),
            regarding: Some(spec.regarding),
            ..Event::default()
        }
    }

    /// Create the Event; log (never return) a failure.
    pub(crate) async fn record(&self, spec: EventSpec) {
        let event = self.build(spec);
        let ns = event.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let pp = PostParams::default();
        if let Err(e) = with_retry(&self.retry, "create event", || api.create(&pp, &event)).await {
            tracing::warn!(namespace = %ns, error = %e, "could not record a Kubernetes Event (the action's outcome stands)");
        }
    }
}
