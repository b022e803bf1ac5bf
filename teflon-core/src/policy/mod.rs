//! The policy language (SPEC §3): parse, validate, compile.
//!
//! [`file`] holds the serde types as written; [`PolicySet::parse`] turns them into a compiled,
//! validated set whose matching never parses strings at decision time.
//!
//! Size: about 750 lines before its tests, kept in one file: validation and compilation of the
//! policy language, one rule per key; the serde types are in file.rs, the conditions in matcher.rs.

pub mod error;
pub mod file;
pub mod matcher;

use std::collections::{BTreeMap, HashSet};
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use serde_saphyr::Spanned;

use crate::action::{Action, ActionKind, QUARANTINE_LABEL};
use crate::alert::Alert;

pub use error::{PolicyError, PolicyErrors};
pub use file::StandalonePods;
use file::{PolicyFileV1, RawAction, RawGuard, RawMatch, RawMinAvailable, RawPolicy};
pub use matcher::{FieldCond, GlobList, Literal, Matcher, PriorityCmp, RuleIndex, TagSet};
use matcher::{RuleIndexBuilder, TagInterner, build_glob};

/// The longest `expire_after_secs`: ten years (a deadline must stay a valid timestamp).
pub const MAX_EXPIRE_AFTER_SECS: u64 = 10 * 365 * 24 * 3600;

/// `min_available`: a pod count or a percentage of desired replicas (rounded up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinAvailable {
    /// At least this many available pods.
    Count(u32),
    /// At least this percentage (0–100) of desired replicas, rounded up.
    Percent(u8),
}

impl MinAvailable {
    /// The pod count required for a workload with `desired` replicas.
    pub fn required(self, desired: u32) -> u32 {
        match self {
            MinAvailable::Count(n) => n,
            MinAvailable::Percent(p) => (u64::from(desired) * u64::from(p)).div_ceil(100) as u32,
        }
    }
}

impl fmt::Display for MinAvailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MinAvailable::Count(n) => write!(f, "{n}"),
            MinAvailable::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Availability and rate guards of a policy (defaults merged with its overrides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// Pods that must stay available.
    pub min_available: MinAvailable,
    /// Pods without a controller owner.
    pub standalone_pods: StandalonePods,
    /// Disruptive actions per workload per `window`; `None` = unlimited.
    pub max_actions: Option<u32>,
    /// The `max_actions` window.
    pub window: Duration,
    /// When availability blocks: wait and retry (true) or skip (false).
    pub defer: bool,
    /// Give up waiting after this long.
    pub max_defer: Duration,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            min_available: MinAvailable::Count(1),
            standalone_pods: StandalonePods::Skip,
            max_actions: None,
            window: Duration::from_secs(60),
            defer: true,
            max_defer: Duration::from_secs(300),
        }
    }
}

/// `defaults:` compiled.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Same pod + same policy within this window → duplicate.
    pub dedup_window: Duration,
    /// Namespaces never acted on.
    pub protected_namespaces: GlobList,
    /// Disruptive actions cluster-wide per `cluster_window`; `None` = unlimited.
    pub cluster_max_actions: Option<u32>,
    /// The cluster budget's window.
    pub cluster_window: Duration,
    /// The default guard.
    pub guard: Guard,
}

/// The namespaces protected when a file does not say.
pub const DEFAULT_PROTECTED_NAMESPACES: [&str; 3] =
    ["kube-system", "kube-public", "kube-node-lease"];

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            dedup_window: Duration::from_secs(60),
            protected_namespaces: GlobList::new(&DEFAULT_PROTECTED_NAMESPACES)
                .unwrap_or_else(|_| GlobList::empty()),
            cluster_max_actions: Some(20),
            cluster_window: Duration::from_secs(60),
            guard: Guard::default(),
        }
    }
}

/// One compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Unique name (`[a-z0-9-]`).
    pub name: Arc<str>,
    /// Match conditions other than `rules`.
    pub matcher: Matcher,
    /// The `rules` globs as written (empty = any rule).
    pub rules: Vec<String>,
    /// What to do.
    pub action: Action,
    /// Guards.
    pub guard: Guard,
    /// Decide and record, but do not act.
    pub dry_run: bool,
    /// Keep evaluating later policies.
    pub continue_matching: bool,
}

impl Policy {
    /// A one-line summary for `teflon check`.
    pub fn summary(&self) -> String {
        let mut s = format!("{}: {}", self.name, self.action.kind());
        if self.dry_run {
            s.push_str(" (dry run)");
        }
        s.push_str(" when ");
        let mut conds: Vec<String> = Vec::new();
        if !self.rules.is_empty() {
            conds.push(format!("rule in {:?}", self.rules));
        }
        if let Some(p) = self.matcher.priority {
            conds.push(format!("priority {p}"));
        }
        if !self.matcher.sources.is_empty() {
            conds.push(format!("source in {:?}", self.matcher.sources));
        }
        if !(self.matcher.tags_all.is_empty()
            && self.matcher.tags_any.is_empty()
            && self.matcher.tags_none.is_empty())
        {
            conds.push("tags".to_owned());
        }
        if let Some(ns) = &self.matcher.namespaces {
            conds.push(format!("namespace in {:?}", ns.patterns()));
        }
        if let Some(ns) = &self.matcher.exclude_namespaces {
            conds.push(format!("namespace not in {:?}", ns.patterns()));
        }
        if !self.matcher.fields.is_empty() {
            conds.push(format!("{} field condition(s)", self.matcher.fields.len()));
        }
        if conds.is_empty() {
            s.push_str("any alert");
        } else {
            s.push_str(&conds.join(", "));
        }
        if self.action.kind().is_disruptive() {
            let g = &self.guard;
            let _ = write!(
                s,
                "; guard min_available={} standalone={} max_actions={} defer={}",
                g.min_available,
                match g.standalone_pods {
                    StandalonePods::Skip => "skip",
                    StandalonePods::Act => "act",
                },
                g.max_actions.map_or("unlimited".to_owned(), |n| format!(
                    "{n}/{}s",
                    g.window.as_secs()
                )),
                if g.defer {
                    format!("{}s", g.max_defer.as_secs())
                } else {
                    "no".to_owned()
                }
            );
        }
        if let Some(e) = self.action.expire_after() {
            let _ = write!(s, "; expires after {}s", e.as_secs());
        }
        if self.continue_matching {
            s.push_str("; continue");
        }
        s
    }
}

/// A validated, compiled policy file.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    defaults: Defaults,
    policies: Vec<Arc<Policy>>,
    index: RuleIndex,
    tags: TagInterner,
}

impl PolicySet {
    /// Parse and compile a policy file (YAML, or JSON which is YAML too). `file` names it in errors.
    pub fn parse(source: &str, file: &str) -> Result<PolicySet, PolicyErrors> {
        let raw: PolicyFileV1 =
            serde_saphyr::from_str(source).map_err(|e| PolicyErrors(vec![yaml_error(file, &e)]))?;
        compile(raw, file)
    }

    /// The compiled defaults.
    pub fn defaults(&self) -> &Defaults {
        &self.defaults
    }

    /// Policies in file order.
    pub fn policies(&self) -> &[Arc<Policy>] {
        &self.policies
    }

    /// A policy by name.
    pub fn get(&self, name: &str) -> Option<&Arc<Policy>> {
        self.policies.iter().find(|p| &*p.name == name)
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// True when there are no policies.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Indices of policies whose `rules` match `rule` (other conditions not checked).
    pub fn rule_candidates(&self, rule: &str) -> Vec<u32> {
        self.index.candidates(rule)
    }

    /// The alert's tags as a set of interned ids.
    pub fn tag_set(&self, alert: &Alert) -> TagSet {
        self.tags.tag_set(&alert.tags)
    }

    /// Policies matching `alert`, in file order (all of them, ignoring `continue`).
    pub fn matching<'a>(&'a self, alert: &'a Alert) -> impl Iterator<Item = &'a Arc<Policy>> + 'a {
        let tags = self.tag_set(alert);
        self.rule_candidates(&alert.rule)
            .into_iter()
            .filter_map(move |i| self.policies.get(i as usize))
            .filter(move |p| p.matcher.matches(alert, &tags))
    }

    /// The largest dedup or rate window any policy uses (how long state must be kept).
    pub fn longest_window(&self) -> Duration {
        let mut w = self.defaults.dedup_window.max(self.defaults.cluster_window);
        for p in &self.policies {
            w = w.max(p.guard.window).max(p.guard.max_defer);
        }
        w
    }
}

/// A serde-saphyr error as a [`PolicyError`] (`FILE:LINE:COL: message`). Other YAML files of
/// Teflon (the server configuration) render their errors with it too.
pub fn yaml_error(file: &str, e: &serde_saphyr::Error) -> PolicyError {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let options = serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off };
    let mut message = e.without_snippet().render_with_options(options);
    // The plain rendering ends with its own "at line L, column C"; we lead with FILE:L:C instead.
    for suffix in [
        format!(" at line {line}, column {column}"),
        format!(" at {line}:{column}"),
    ] {
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    PolicyError {
        file: file.to_owned(),
        line,
        column,
        message,
    }
}

struct Compiler<'a> {
    file: &'a str,
    errors: Vec<PolicyError>,
}

impl Compiler<'_> {
    fn err<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.errors.push(PolicyError {
            file: self.file.to_owned(),
            line: at.referenced.line(),
            column: at.referenced.column(),
            message: message.into(),
        });
    }

    fn globs(&mut self, list: &[Spanned<String>], what: &str) -> Option<GlobList> {
        let mut ok = true;
        for g in list {
            if let Err(e) = build_glob(&g.value) {
                self.err(g, format!("{what}: {e}"));
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        let patterns: Vec<&str> = list.iter().map(|g| g.value.as_str()).collect();
        GlobList::new(&patterns).ok()
    }

    fn guard(&mut self, base: &Guard, raw: Option<&RawGuard>) -> Guard {
        let mut g = base.clone();
        let Some(raw) = raw else { return g };
        if let Some(m) = &raw.min_available {
            match parse_min_available(&m.value) {
                Ok(v) => g.min_available = v,
                Err(e) => self.err(m, e),
            }
        }
        if let Some(s) = raw.standalone_pods {
            g.standalone_pods = s;
        }
        if let Some(m) = raw.max_actions {
            g.max_actions = m;
        }
        if let Some(w) = raw.window_secs {
            g.window = Duration::from_secs(w);
        }
        if let Some(d) = raw.defer {
            g.defer = d;
        }
        if let Some(d) = raw.max_defer_secs {
            g.max_defer = Duration::from_secs(d);
        }
        g
    }

    fn action(&mut self, raw: &RawAction, policy: &str) -> Action {
        let kind = raw.kind.value;
        let misplaced = |key: &str, allowed: &str| {
            format!(
                "`{key}` applies to {allowed} actions only, not `{}`",
                kind.as_str()
            )
        };
        if let Some(g) = &raw.grace_period_secs
            && !matches!(kind, ActionKind::Delete | ActionKind::Evict)
        {
            self.err(g, misplaced("grace_period_secs", "delete and evict"));
        }
        if let Some(l) = &raw.labels
            && kind != ActionKind::Quarantine
        {
            self.err(l, misplaced("labels", "quarantine"));
        }
        if let Some(n) = &raw.network_isolate
            && kind != ActionKind::Quarantine
        {
            self.err(n, misplaced("network_isolate", "quarantine"));
        }
        if let Some(b) = &raw.binary_field
            && kind != ActionKind::BlockBinary
        {
            self.err(b, misplaced("binary_field", "block_binary"));
        }
        if let Some(e) = &raw.expire_after_secs {
            if !matches!(kind, ActionKind::Quarantine | ActionKind::BlockBinary) {
                self.err(
                    e,
                    misplaced("expire_after_secs", "quarantine and block_binary"),
                );
            } else if e.value == 0 {
                self.err(
                    e,
                    "`expire_after_secs` must be at least 1 (leave it out to keep the action until it is released)"
                        .to_owned(),
                );
            } else if e.value > MAX_EXPIRE_AFTER_SECS {
                self.err(
                    e,
                    format!("`expire_after_secs` must be at most {MAX_EXPIRE_AFTER_SECS} (10 years); leave it out to keep the action until it is released"),
                );
            }
        }
        let expire_after = raw
            .expire_after_secs
            .as_ref()
            .filter(|e| (1..=MAX_EXPIRE_AFTER_SECS).contains(&e.value))
            .map(|e| Duration::from_secs(e.value));
        let grace = raw.grace_period_secs.as_ref().map(|g| g.value);
        match kind {
            ActionKind::Delete => Action::Delete {
                grace_period_secs: grace,
            },
            ActionKind::Evict => Action::Evict {
                grace_period_secs: grace,
            },
            ActionKind::Quarantine => {
                let labels = raw
                    .labels
                    .as_ref()
                    .map(|l| l.value.clone())
                    .unwrap_or_default();
                if let Some(l) = &raw.labels {
                    for (k, v) in &l.value {
                        if let Err(e) = validate_label(k, v) {
                            self.err(l, e);
                        }
                    }
                    if l.value.contains_key(QUARANTINE_LABEL) {
                        self.err(l, format!("`{QUARANTINE_LABEL}` is set by Teflon to the policy name ({policy}); remove it from labels"));
                    }
                }
                Action::Quarantine {
                    labels,
                    network_isolate: raw.network_isolate.as_ref().is_none_or(|n| n.value),
                    expire_after,
                }
            }
            ActionKind::BlockBinary => Action::BlockBinary {
                binary_fields: match &raw.binary_field {
                    Some(f) => vec![f.value.clone()],
                    None => vec!["proc.exepath".to_owned(), "proc.name".to_owned()],
                },
                expire_after,
            },
            ActionKind::Log => Action::Log,
        }
    }

    fn field_cond(&mut self, key: &str, raw: &Spanned<serde_json::Value>) -> Option<FieldCond> {
        use serde_json::Value;
        let literal = |v: &Value| -> Option<Literal> {
            match v {
                Value::String(s) => Some(Literal::new(s.clone())),
                Value::Number(n) => Some(Literal::new(n.to_string())),
                Value::Bool(b) => Some(Literal::new(b.to_string())),
                _ => None,
            }
        };
        let literals = |v: &Value| -> Option<Vec<Literal>> {
            match v {
                Value::Array(items) => items.iter().map(literal).collect(),
                other => literal(other).map(|l| vec![l]),
            }
        };
        let hint = "expected a value, a list of values, {glob: PATTERN}, {exists: true|false} or {not: [VALUES]}";
        match &raw.value {
            Value::Object(map) => {
                if map.len() != 1 {
                    self.err(raw, format!("field {key:?}: {hint}"));
                    return None;
                }
                let (op, arg) = map.iter().next()?;
                match (op.as_str(), arg) {
                    ("glob", Value::String(p)) => match build_glob(p) {
                        Ok(g) => Some(FieldCond::Glob(p.clone(), g.compile_matcher())),
                        Err(e) => {
                            self.err(raw, format!("field {key:?}: {e}"));
                            None
                        }
                    },
                    ("exists", Value::Bool(b)) => Some(FieldCond::Exists(*b)),
                    ("not", v) => match literals(v) {
                        Some(l) => Some(FieldCond::NoneOf(l)),
                        None => {
                            self.err(
                                raw,
                                format!("field {key:?}: `not` takes a value or a list of values"),
                            );
                            None
                        }
                    },
                    (other, _) => {
                        self.err(
                            raw,
                            format!("field {key:?}: unknown condition `{other}` ({hint})"),
                        );
                        None
                    }
                }
            }
            Value::Null => {
                self.err(
                    raw,
                    format!("field {key:?}: null is not a condition (use {{exists: false}})"),
                );
                None
            }
            v => match literals(v) {
                Some(l) if !l.is_empty() => Some(FieldCond::AnyOf(l)),
                _ => {
                    self.err(raw, format!("field {key:?}: {hint}"));
                    None
                }
            },
        }
    }

    fn matcher(&mut self, raw: &RawMatch, tags: &mut TagInterner) -> Matcher {
        let mut m = Matcher::default();
        if let Some(p) = &raw.priority {
            match PriorityCmp::parse(&p.value) {
                Ok(c) => m.priority = Some(c),
                Err(e) => self.err(p, e),
            }
        }
        m.sources = raw.sources.clone().unwrap_or_default();
        if let Some(t) = &raw.tags {
            m.tags_all = t.all.iter().map(|s| tags.intern(s)).collect();
            m.tags_any = t.any.iter().map(|s| tags.intern(s)).collect();
            m.tags_none = t.none.iter().map(|s| tags.intern(s)).collect();
        }
        if let Some(ns) = &raw.namespaces {
            m.namespaces = self.globs(ns, "namespaces");
        }
        if let Some(ns) = &raw.exclude_namespaces {
            m.exclude_namespaces = self.globs(ns, "exclude_namespaces");
        }
        if let Some(fields) = &raw.fields {
            for (key, cond) in fields {
                if let Some(c) = self.field_cond(key, cond) {
                    m.fields.push((key.clone(), c));
                }
            }
        }
        m
    }
}

fn parse_min_available(raw: &RawMinAvailable) -> Result<MinAvailable, String> {
    let hint = "expected a pod count (e.g. 1) or a percentage of desired replicas (e.g. \"50%\")";
    match raw {
        RawMinAvailable::Count(n) => u32::try_from(*n)
            .map(MinAvailable::Count)
            .map_err(|_| format!("min_available {n} is out of range ({hint})")),
        RawMinAvailable::Text(s) => {
            let t = s.trim();
            if let Some(pct) = t.strip_suffix('%') {
                match pct.trim().parse::<u16>() {
                    Ok(p) if p <= 100 => Ok(MinAvailable::Percent(p as u8)),
                    Ok(_) => Err(format!(
                        "min_available {s:?}: a percentage must be between 0% and 100%"
                    )),
                    Err(_) => Err(format!("min_available {s:?}: {hint}")),
                }
            } else {
                t.parse::<u32>()
                    .map(MinAvailable::Count)
                    .map_err(|_| format!("min_available {s:?}: {hint}"))
            }
        }
    }
}

fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!(
            "policy name {name:?} must be 1 to 63 characters of [a-z0-9-]"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || name.starts_with('-')
        || name.ends_with('-')
    {
        return Err(format!(
            "policy name {name:?} may only contain [a-z0-9-] and must start and end with a letter or digit (it becomes a label value)"
        ));
    }
    Ok(())
}

fn is_label_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && s.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric)
}

fn validate_label(key: &str, value: &str) -> Result<(), String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            let prefix_ok = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|p| {
                    !p.is_empty()
                        && p.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                });
            if !prefix_ok {
                return Err(format!(
                    "label key {key:?}: invalid prefix (a DNS subdomain, e.g. example.com/)"
                ));
            }
            name
        }
        None => key,
    };
    if !is_label_token(name) {
        return Err(format!(
            "label key {key:?} is not a valid Kubernetes label name"
        ));
    }
    if !value.is_empty() && !is_label_token(value) {
        return Err(format!(
            "label value {value:?} (for {key:?}) is not a valid Kubernetes label value"
        ));
    }
    Ok(())
}

fn compile(raw: PolicyFileV1, file: &str) -> Result<PolicySet, PolicyErrors> {
    let mut c = Compiler {
        file,
        errors: Vec::new(),
    };
    if raw.version.value != 1 {
        c.err(
            &raw.version,
            format!(
                "unsupported policy file version {} (this Teflon reads version: 1)",
                raw.version.value
            ),
        );
    }
    let builtin = Defaults::default();
    let d = &raw.defaults;
    let protected = match &d.protected_namespaces {
        Some(list) => c
            .globs(list, "protected_namespaces")
            .unwrap_or_else(GlobList::empty),
        None => builtin.protected_namespaces.clone(),
    };
    let guard = c.guard(&builtin.guard, d.guard.as_ref());
    let defaults = Defaults {
        dedup_window: d
            .dedup_window_secs
            .map_or(builtin.dedup_window, Duration::from_secs),
        protected_namespaces: protected,
        cluster_max_actions: d.cluster_max_actions.unwrap_or(builtin.cluster_max_actions),
        cluster_window: d
            .cluster_window_secs
            .map_or(builtin.cluster_window, Duration::from_secs),
        guard,
    };

    let mut tags = TagInterner::default();
    let mut index = RuleIndexBuilder::default();
    let mut policies = Vec::with_capacity(raw.policies.len());
    let mut seen: HashSet<String> = HashSet::new();
    let mut first_at: BTreeMap<String, u64> = BTreeMap::new();
    for (i, p) in raw.policies.iter().enumerate() {
        let idx = u32::try_from(i).unwrap_or(u32::MAX);
        let RawPolicy {
            name,
            matcher,
            action,
            guard,
            dry_run,
            continue_matching,
        } = p;
        if let Err(e) = validate_name(&name.value) {
            c.err(name, e);
        }
        if !seen.insert(name.value.clone()) {
            let first = first_at.get(&name.value).copied().unwrap_or(0);
            c.err(
                name,
                format!("duplicate policy name {:?} (first defined on line {first}); names must be unique", name.value),
            );
        } else {
            first_at.insert(name.value.clone(), name.referenced.line());
        }
        let rules: Vec<String> = match &matcher.rules {
            Some(list) => {
                for r in list {
                    if let Err(e) = index.add(idx, &r.value) {
                        c.err(r, format!("rules: {e}"));
                    }
                }
                if list.is_empty() {
                    index.any(idx);
                }
                list.iter().map(|r| r.value.clone()).collect()
            }
            None => {
                index.any(idx);
                Vec::new()
            }
        };
        let compiled_matcher = c.matcher(matcher, &mut tags);
        let compiled_action = c.action(action, &name.value);
        let compiled_guard = c.guard(&defaults.guard, guard.as_ref());
        policies.push(Arc::new(Policy {
            name: Arc::from(name.value.as_str()),
            matcher: compiled_matcher,
            rules,
            action: compiled_action,
            guard: compiled_guard,
            dry_run: *dry_run,
            continue_matching: *continue_matching,
        }));
    }
    let index = match index.build() {
        Ok(i) => i,
        Err(e) => {
            c.errors.push(PolicyError {
                file: file.to_owned(),
                line: 0,
                column: 0,
                message: format!("rules: {e}"),
            });
            RuleIndex::default()
        }
    };
    if !c.errors.is_empty() {
        return Err(PolicyErrors(c.errors));
    }
    Ok(PolicySet {
        defaults,
        policies,
        index,
        tags,
    })
}

#[cfg(test)]
mod tests;
