//! The policy file as written (version 1): serde types only, validated by `compile`.
//!
//! Every user-facing value that can be wrong after parsing is `Spanned`, so validation errors
//! point at the exact line and column.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

use crate::action::ActionKind;

/// Top level of a policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFileV1 {
    /// Must be 1.
    pub version: Spanned<u32>,
    /// Defaults for every policy.
    #[serde(default)]
    pub defaults: RawDefaults,
    /// Policies, tried in order.
    #[serde(default)]
    pub policies: Vec<RawPolicy>,
}

/// `defaults:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// Same pod + same policy within this window → duplicate.
    pub dedup_window_secs: Option<u64>,
    /// Namespaces never acted on (globs).
    pub protected_namespaces: Option<Vec<Spanned<String>>>,
    /// Disruptive actions cluster-wide per window; explicit `null` = unlimited.
    #[serde(default, deserialize_with = "explicit_null")]
    pub cluster_max_actions: Option<Option<u32>>,
    /// The cluster budget's window.
    pub cluster_window_secs: Option<u64>,
    /// Default guard.
    pub guard: Option<RawGuard>,
}

/// `guard:` — every key optional, overriding key by key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuard {
    /// Integer or `"NN%"`.
    pub min_available: Option<Spanned<RawMinAvailable>>,
    /// `skip` or `act`.
    pub standalone_pods: Option<StandalonePods>,
    /// Per workload per window; explicit `null` = unlimited.
    #[serde(default, deserialize_with = "explicit_null")]
    pub max_actions: Option<Option<u32>>,
    /// The `max_actions` window.
    pub window_secs: Option<u64>,
    /// Wait and retry when availability blocks.
    pub defer: Option<bool>,
    /// Give up after this long.
    pub max_defer_secs: Option<u64>,
}

/// `min_available` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawMinAvailable {
    /// A pod count.
    Count(i64),
    /// `"NN%"` (or a count written as a string).
    Text(String),
}

/// What to do with pods that have no controller owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StandalonePods {
    /// Leave them alone (nothing would replace them).
    Skip,
    /// Act on them without the availability step.
    Act,
}

/// One entry of `policies:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Unique, `[a-z0-9-]`.
    pub name: Spanned<String>,
    /// Conditions; empty matches every alert.
    #[serde(rename = "match", default)]
    pub matcher: RawMatch,
    /// What to do.
    pub action: RawAction,
    /// Guard overrides.
    pub guard: Option<RawGuard>,
    /// Decide and record, but do not act.
    #[serde(default)]
    pub dry_run: bool,
    /// Keep evaluating later policies.
    #[serde(rename = "continue", default)]
    pub continue_matching: bool,
}

/// `match:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// Rule globs, any.
    pub rules: Option<Vec<Spanned<String>>>,
    /// `[<|<=|>|>=|=]Priority`.
    pub priority: Option<Spanned<String>>,
    /// Sources, any.
    pub sources: Option<Vec<String>>,
    /// Tag conditions.
    pub tags: Option<RawTags>,
    /// Namespace globs, any.
    pub namespaces: Option<Vec<Spanned<String>>>,
    /// Namespace globs excluded.
    pub exclude_namespaces: Option<Vec<Spanned<String>>>,
    /// Field conditions, all must hold.
    pub fields: Option<BTreeMap<String, Spanned<serde_json::Value>>>,
}

/// `tags:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTags {
    /// Every one present.
    #[serde(default)]
    pub all: Vec<String>,
    /// At least one present.
    #[serde(default)]
    pub any: Vec<String>,
    /// None present.
    #[serde(default)]
    pub none: Vec<String>,
}

/// `action:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    /// delete | evict | quarantine | block_binary | log
    #[serde(rename = "type")]
    pub kind: Spanned<ActionKind>,
    /// delete, evict.
    pub grace_period_secs: Option<Spanned<u32>>,
    /// quarantine: extra labels.
    pub labels: Option<Spanned<BTreeMap<String, String>>>,
    /// quarantine: create the deny-all NetworkPolicy (default true).
    pub network_isolate: Option<Spanned<bool>>,
    /// block_binary: the field holding the binary path.
    pub binary_field: Option<Spanned<String>>,
    /// quarantine, block_binary: undo the action by itself this many seconds later.
    pub expire_after_secs: Option<Spanned<u64>>,
}

/// `Some(None)` for an explicit `null`, `None` when the key is absent (with `#[serde(default)]`).
fn explicit_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
