//! Notifications (`notify:` in the configuration): webhooks told about decisions and releases
//! as they happen, in the audit record's JSON or as a Slack incoming-webhook message.
//!
//! Never on the decision path: the engine task only checks each sink's filter and, for a
//! match, serializes the message once and offers it to the sink's bounded queue
//! (`try_send`, never waiting). One task per sink delivers its queue in order, retrying
//! connection errors, timeouts, 408, 429 (after `Retry-After`) and 5xx with jittered
//! exponential backoff up to `max_attempts`. A slow or dead webhook fills its own queue;
//! what does not fit is dropped and counted (`teflon_notifications_total{sink,result}`),
//! and the decisions, the audit log and the other sinks go on unaffected.
//!
//! Size: about 850 lines before its tests, kept in one file: the sinks, their queues, retries and
//! both formats share the delivery loop and its counters.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use http_body_util::Full;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use teflon_core::policy::GlobList;
use teflon_core::{DecisionRecord, Reason, Timestamp, Verdict, WorkloadRef};
use teflon_metrics::response::{NotificationDone, NotifyResult};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::audit::{AuditTail, write_line};
use crate::http_client::{self, HttpClient};

/// Messages a sink holds while its webhook is slow or down, by default.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// Attempts per message, the first included, by default.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// How long one attempt may take, by default.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// Delay before the first retry; doubled each time (with jitter), at most [`MAX_DELAY`].
const BASE_DELAY: Duration = Duration::from_millis(500);
/// The longest wait between two attempts (also caps `Retry-After`).
const MAX_DELAY: Duration = Duration::from_secs(30);
/// How long shutdown lets the sinks deliver what they hold.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Reasons of release records, for `filter.reasons`.
pub const RELEASE_REASONS: [&str; 2] = ["released", "expired"];
/// Placeholders of `link`.
pub const LINK_PLACEHOLDERS: [&str; 8] = [
    "namespace",
    "pod",
    "workload",
    "policy",
    "rule",
    "action",
    "outcome",
    "alert_id",
];

fn default_queue_capacity() -> usize {
    DEFAULT_QUEUE_CAPACITY
}
fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}
fn default_timeout_secs() -> u64 {
    DEFAULT_TIMEOUT_SECS
}

/// One `notify:` entry: a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The `sink` label of `teflon_notifications_total` (default `<format>-<index>`).
    #[serde(default)]
    pub name: Option<String>,
    /// Where to POST (`http://` or `https://`).
    #[serde(default)]
    pub url: Option<String>,
    /// A file holding the URL (a Slack webhook URL is a secret), read at start.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// `json` (the audit record) or `slack` (incoming-webhook blocks).
    #[serde(default)]
    pub format: NotifyFormat,
    /// Headers sent as they are.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers whose value is a file's content (tokens), read at every delivery so that a
    /// rotated Secret is picked up.
    #[serde(default)]
    pub headers_from_files: BTreeMap<String, PathBuf>,
    /// `slack`: a link in each message, with `{namespace}`, `{pod}`, `{workload}`,
    /// `{policy}`, `{rule}`, `{action}`, `{outcome}`, `{alert_id}` filled in (URL-encoded).
    #[serde(default)]
    pub link: Option<String>,
    /// Trust this CA (PEM) besides the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Which records to send.
    #[serde(default)]
    pub filter: NotifyFilter,
    /// Messages held while the webhook is slow or down; beyond it they are dropped (counted).
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Attempts per message, the first included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// How long one attempt may take.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

/// The body a sink gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormat {
    /// The audit record, as written to the audit log.
    #[default]
    Json,
    /// A Slack incoming-webhook message (blocks).
    Slack,
}

impl NotifyFormat {
    fn as_str(self) -> &'static str {
        match self {
            NotifyFormat::Json => "json",
            NotifyFormat::Slack => "slack",
        }
    }
}

/// `filter:` — every key present must hold. Release records count as verdict `act` with
/// reason `released` or `expired` and the policy whose action they undid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFilter {
    /// Verdicts sent (default: `[act]`: what Teflon did, and releases).
    #[serde(default)]
    pub verdicts: Option<Vec<Verdict>>,
    /// Reason codes sent (default: any), plus `released` and `expired`.
    #[serde(default)]
    pub reasons: Option<Vec<String>>,
    /// Policy name globs (default: any; a record without a policy never matches a list).
    #[serde(default)]
    pub policies: Option<Vec<String>>,
}

/// The sink names, in order: `name`, or `<format>-<index>`.
fn sink_name(i: usize, c: &NotifyConfig) -> String {
    c.name
        .clone()
        .unwrap_or_else(|| format!("{}-{i}", c.format.as_str()))
}

/// Check `notify:`; the error says which entry and what to do.
pub fn validate(sinks: &[NotifyConfig]) -> Result<(), String> {
    let mut names = HashSet::new();
    for (i, c) in sinks.iter().enumerate() {
        let name = sink_name(i, c);
        let at = format!("notify[{i}] ({name})");
        let label_ok = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'));
        if !label_ok {
            return Err(format!(
                "{at}: name must be 1–63 characters of [A-Za-z0-9._-]"
            ));
        }
        if !names.insert(name.clone()) {
            return Err(format!("{at}: another sink has the name {name:?}"));
        }
        match (&c.url, &c.url_file) {
            (Some(url), None) => {
                check_url(url).map_err(|e| format!("{at}: url: {e}"))?;
            }
            (None, Some(_)) => {}
            _ => return Err(format!("{at}: give `url` or `url_file` (one of them)")),
        }
        for (k, v) in &c.headers {
            HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("{at}: header name {k:?} is not valid"))?;
            HeaderValue::from_str(v)
                .map_err(|_| format!("{at}: header {k}: value is not valid"))?;
        }
        for k in c.headers_from_files.keys() {
            HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("{at}: header name {k:?} is not valid"))?;
        }
        if let Some(link) = &c.link {
            check_link(link).map_err(|e| format!("{at}: link: {e}"))?;
        }
        if let Some(reasons) = &c.filter.reasons {
            for r in reasons {
                let known = Reason::ALL.iter().any(|x| x.as_str() == r)
                    || RELEASE_REASONS.contains(&r.as_str());
                if !known {
                    let all: Vec<&str> = Reason::ALL
                        .iter()
                        .map(|x| x.as_str())
                        .chain(RELEASE_REASONS)
                        .collect();
                    return Err(format!(
                        "{at}: filter.reasons: unknown reason {r:?} (expected one of {})",
                        all.join(", ")
                    ));
                }
            }
        }
        if let Some(p) = &c.filter.policies {
            GlobList::new(p).map_err(|e| format!("{at}: filter.policies: {e}"))?;
        }
        if c.queue_capacity == 0 || c.max_attempts == 0 || c.timeout_secs == 0 {
            return Err(format!(
                "{at}: queue_capacity, max_attempts and timeout_secs must be at least 1"
            ));
        }
    }
    Ok(())
}

fn check_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url.trim().parse().map_err(|e| format!("{e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.authority().is_some() => Ok(uri),
        _ => Err(format!("{url:?} is not an http:// or https:// URL")),
    }
}

fn check_link(link: &str) -> Result<(), String> {
    let mut rest = link;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| "a `{` without its `}`".to_owned())?;
        let key = &after[..close];
        if !LINK_PLACEHOLDERS.contains(&key) {
            return Err(format!(
                "unknown placeholder {{{key}}} (expected one of {})",
                LINK_PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// Resolve relative paths against the configuration file's directory.
pub(crate) fn resolve_paths(sinks: &mut [NotifyConfig], dir: &Path) {
    let fix = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = dir.join(&*p);
        }
    };
    for s in sinks {
        if let Some(p) = &mut s.url_file {
            fix(p);
        }
        if let Some(p) = &mut s.ca_file {
            fix(p);
        }
        for p in s.headers_from_files.values_mut() {
            fix(p);
        }
    }
}

/// What a notification is about, for the filter and the Slack message.
pub(crate) struct Facts {
    pub verdict: Verdict,
    /// The reason code (or `released`, `expired`).
    pub reason: String,
    pub policy: Option<String>,
    /// The message's title.
    pub title: String,
    pub rule: Option<String>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub workload: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub alert_id: Option<String>,
    pub time: Timestamp,
    /// More Slack fields (name, value).
    pub extra: Vec<(String, String)>,
}

impl Facts {
    /// What a decision's audit record says.
    pub(crate) fn of_decision<S: AsRef<str>, W: std::borrow::Borrow<WorkloadRef>>(
        d: &DecisionRecord<S, W>,
        tail: &AuditTail<'_>,
    ) -> Facts {
        let target = d
            .target
            .as_ref()
            .map(|t| (t.namespace.as_ref().to_owned(), t.pod.as_ref().to_owned()));
        let action = d.action.map(|a| a.as_str().to_owned());
        let what = match (&action, &target) {
            (Some(a), Some((ns, pod))) => format!("{a} {ns}/{pod}"),
            (Some(a), None) => a.clone(),
            (None, Some((ns, pod))) => format!("{ns}/{pod}"),
            (None, None) => d.rule.as_ref().to_owned(),
        };
        let mut title = match (d.verdict, tail.outcome) {
            (Verdict::Act, Some(outcome)) => format!("{what}: {outcome}"),
            (Verdict::Act, None) => format!("{what}: {}", d.reason.as_str()),
            (Verdict::Defer, _) => format!("deferred {what} ({})", d.reason.as_str()),
            (Verdict::Skip, _) => format!("skipped {what} ({})", d.reason.as_str()),
        };
        if d.dry_run {
            title.push_str(" (dry run)");
        }
        let mut extra = Vec::new();
        if let Some(m) = tail.outcome_message {
            extra.push(("Why".to_owned(), m.to_owned()));
        }
        Facts {
            verdict: d.verdict,
            reason: d.reason.as_str().to_owned(),
            policy: d.policy.as_ref().map(|p| p.as_ref().to_owned()),
            title,
            rule: Some(d.rule.as_ref().to_owned()),
            namespace: target.as_ref().map(|t| t.0.clone()),
            pod: target.map(|t| t.1),
            workload: d.workload.as_ref().map(|w| w.borrow().to_string()),
            action,
            outcome: tail.outcome.map(str::to_owned),
            alert_id: Some(tail.alert_id.to_owned()).filter(|a| !a.is_empty()),
            time: d.time,
            extra,
        }
    }
}

/// Slack's mrkdwn escapes (`&`, `<`, `>`), and a length bound (section texts: 2000).
fn mrkdwn(s: &str, max_chars: usize) -> String {
    let escaped = s
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    if escaped.chars().count() <= max_chars {
        escaped
    } else {
        let mut out: String = escaped.chars().take(max_chars.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Characters kept as they are in link values: RFC 3986 unreserved.
const LINK_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `template` with its placeholders filled in from `f` (URL-encoded).
pub(crate) fn fill_link(template: &str, f: &Facts) -> String {
    let value = |key: &str| -> String {
        let v = match key {
            "namespace" => f.namespace.clone(),
            "pod" => f.pod.clone(),
            "workload" => f.workload.clone(),
            "policy" => f.policy.clone(),
            "rule" => f.rule.clone(),
            "action" => f.action.clone(),
            "outcome" => f.outcome.clone(),
            "alert_id" => f.alert_id.clone(),
            _ => None,
        };
        utf8_percent_encode(&v.unwrap_or_default(), LINK_VALUE).to_string()
    };
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                out.push_str(&value(&after[..close]));
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The Slack incoming-webhook message: a header, the facts as fields, the link and the
/// alert in a context line; `text` is the fallback for notifications.
pub(crate) fn slack_message(f: &Facts, link: Option<&str>) -> Value {
    let title = format!("Teflon: {}", f.title);
    let mut fields = Vec::new();
    let mut field = |name: &str, value: Option<String>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            fields.push(
                json!({ "type": "mrkdwn", "text": format!("*{name}*\n{}", mrkdwn(&v, 1900)) }),
            );
        }
    };
    field("Rule", f.rule.clone());
    field(
        "Pod",
        match (&f.namespace, &f.pod) {
            (Some(ns), Some(p)) => Some(format!("{ns}/{p}")),
            _ => None,
        },
    );
    field("Workload", f.workload.clone());
    field(
        "Action",
        f.action.as_ref().map(|a| match &f.policy {
            Some(p) => format!("{a} (policy {p})"),
            None => a.clone(),
        }),
    );
    field("Outcome", f.outcome.clone());
    field(
        "Decision",
        Some(format!("{} · {}", f.verdict.as_str(), f.reason)),
    );
    for (k, v) in &f.extra {
        field(k, Some(v.clone()));
    }
    fields.truncate(10);
    let mut context = Vec::new();
    if let Some(template) = link {
        context.push(format!("<{}|Open>", fill_link(template, f)));
    }
    if let Some(id) = &f.alert_id {
        context.push(format!("alert {}", mrkdwn(id, 200)));
    }
    context.push(f.time.to_rfc3339());
    json!({
        "text": mrkdwn(&title, 1000),
        "blocks": [
            { "type": "header", "text": { "type": "plain_text", "text": title.chars().take(150).collect::<String>() } },
            { "type": "section", "fields": fields },
            { "type": "context", "elements": [{ "type": "mrkdwn", "text": context.join("  ·  ") }] },
        ],
    })
}

#[derive(Debug)]
struct Filter {
    verdicts: Vec<Verdict>,
    reasons: Option<Vec<String>>,
    policies: Option<GlobList>,
}

impl Filter {
    fn new(f: &NotifyFilter) -> Result<Filter, String> {
        Ok(Filter {
            verdicts: f.verdicts.clone().unwrap_or_else(|| vec![Verdict::Act]),
            reasons: f.reasons.clone(),
            policies: f.policies.as_deref().map(GlobList::new).transpose()?,
        })
    }

    fn matches(&self, verdict: Verdict, reason: &str, policy: Option<&str>) -> bool {
        self.verdicts.contains(&verdict)
            && self
                .reasons
                .as_ref()
                .is_none_or(|r| r.iter().any(|x| x == reason))
            && self
                .policies
                .as_ref()
                .is_none_or(|g| policy.is_some_and(|p| g.is_match(p)))
    }
}

/// A sink as it runs.
struct Sink {
    name: Arc<str>,
    url: http::Uri,
    format: NotifyFormat,
    headers: Vec<(HeaderName, HeaderValue)>,
    headers_from_files: Vec<(HeaderName, PathBuf)>,
    link: Option<String>,
    filter: Filter,
    max_attempts: u32,
    timeout: Duration,
    client: HttpClient,
    tx: mpsc::Sender<Bytes>,
    /// Messages queued or being delivered (counted as dropped if shutdown abandons them).
    queued: AtomicU64,
    /// In a failing streak (logged once per streak).
    failing: AtomicBool,
    /// Dropping (queue full) streak, logged once.
    dropping: AtomicBool,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("name", &self.name)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Sink {
    fn count(&self, result: NotifyResult) {
        NotificationDone {
            sink: self.name.clone(),
            result,
        }
        .emit();
    }

    fn request(&self, body: &Bytes) -> Result<http::Request<Full<Bytes>>, String> {
        let mut req = http::Request::post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("teflon/", env!("CARGO_PKG_VERSION")));
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        for (k, path) in &self.headers_from_files {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("header {k} from {}: {e}", path.display()))?;
            let v = HeaderValue::from_str(text.trim()).map_err(|_| {
                format!(
                    "header {k} from {}: not a valid header value",
                    path.display()
                )
            })?;
            req = req.header(k, v);
        }
        req.body(Full::new(body.clone()))
            .map_err(|e| format!("cannot build the request: {e}"))
    }

    /// Deliver one message, retrying what can pass.
    async fn deliver(&self, body: &Bytes) -> NotifyResult {
        let mut last = String::new();
        for attempt in 1..=self.max_attempts {
            let req = match self.request(body) {
                Ok(r) => r,
                Err(e) => {
                    self.failed(&e);
                    return NotifyResult::Failed;
                }
            };
            let wait = match http_client::send(&self.client, req, self.timeout).await {
                Ok((status, _, _)) if status.is_success() => {
                    if self.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!(sink = %self.name, "notifications are delivered again");
                    }
                    return NotifyResult::Sent;
                }
                Ok((status, headers, text)) => {
                    last = format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&text[..text.len().min(200)])
                    );
                    let retryable = status.is_server_error()
                        || status == http::StatusCode::TOO_MANY_REQUESTS
                        || status == http::StatusCode::REQUEST_TIMEOUT;
                    if !retryable {
                        // A 4xx: the sink refuses this message (bad URL, token, payload).
                        break;
                    }
                    headers
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s).min(MAX_DELAY))
                }
                Err(e) => {
                    last = e.to_string();
                    None
                }
            };
            if attempt < self.max_attempts {
                tokio::time::sleep(wait.unwrap_or_else(|| backoff(attempt))).await;
            }
        }
        self.failed(&last);
        NotifyResult::Failed
    }

    fn failed(&self, why: &str) {
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(sink = %self.name, error = %why, "notification not delivered (the decision and its audit record stand); counted in teflon_notifications_total{{result=\"failed\"}}");
        }
    }

    fn offer(&self, body: Bytes) {
        match self.tx.try_send(body) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
                self.dropping.store(false, Ordering::Relaxed);
            }
            Err(_) => {
                self.count(NotifyResult::Dropped);
                if !self.dropping.swap(true, Ordering::Relaxed) {
                    tracing::warn!(sink = %self.name, "notification queue full (the webhook is slow or down): dropping notifications, counted in teflon_notifications_total{{result=\"dropped\"}}");
                }
            }
        }
    }
}

/// `BASE_DELAY × 2^(attempt-1)`, at most [`MAX_DELAY`], times a random factor in [0.5, 1).
fn backoff(attempt: u32) -> Duration {
    let exp = BASE_DELAY
        .saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
        .min(MAX_DELAY);
    exp.mul_f64(rand::rng().random_range(0.5..1.0))
}

/// A sink could not be started.
#[derive(Debug, thiserror::Error)]
#[error("notify: {0}")]
pub struct NotifyError(pub String);

/// The configured sinks. Cheap to clone; with none, offering costs one branch.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    sinks: Arc<[Arc<Sink>]>,
    tasks: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    closing: Option<Arc<watch::Sender<bool>>>,
}

impl Notifier {
    /// Start a worker per configured sink. Must be called inside a tokio runtime.
    pub fn start(configs: &[NotifyConfig]) -> Result<Notifier, NotifyError> {
        validate(configs).map_err(NotifyError)?;
        if configs.is_empty() {
            return Ok(Notifier::default());
        }
        let (closing, _) = watch::channel(false);
        let mut sinks = Vec::with_capacity(configs.len());
        let mut tasks = Vec::with_capacity(configs.len());
        for (i, c) in configs.iter().enumerate() {
            let name = sink_name(i, c);
            let err = |e: String| NotifyError(format!("notify[{i}] ({name}): {e}"));
            let url = match (&c.url, &c.url_file) {
                (Some(u), _) => u.clone(),
                (None, Some(path)) => std::fs::read_to_string(path)
                    .map_err(|e| err(format!("url_file {}: {e}", path.display())))?,
                (None, None) => return Err(err("no url".to_owned())),
            };
            let url = check_url(url.trim()).map_err(|e| err(format!("url: {e}")))?;
            for path in c.headers_from_files.values() {
                std::fs::metadata(path)
                    .map_err(|e| err(format!("headers_from_files {}: {e}", path.display())))?;
            }
            let client =
                http_client::client(c.ca_file.as_deref()).map_err(|e| err(e.to_string()))?;
            let (tx, rx) = mpsc::channel(c.queue_capacity);
            let headers = c
                .headers
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        HeaderName::from_bytes(k.as_bytes()).ok()?,
                        HeaderValue::from_str(v).ok()?,
                    ))
                })
                .collect();
            let headers_from_files = c
                .headers_from_files
                .iter()
                .filter_map(|(k, p)| Some((HeaderName::from_bytes(k.as_bytes()).ok()?, p.clone())))
                .collect();
            let sink = Arc::new(Sink {
                name: Arc::from(name.as_str()),
                url,
                format: c.format,
                headers,
                headers_from_files,
                link: c.link.clone(),
                filter: Filter::new(&c.filter).map_err(err)?,
                max_attempts: c.max_attempts,
                timeout: Duration::from_secs(c.timeout_secs),
                client,
                tx,
                queued: AtomicU64::new(0),
                failing: AtomicBool::new(false),
                dropping: AtomicBool::new(false),
            });
            tasks.push(tokio::spawn(run(sink.clone(), rx, closing.subscribe())));
            tracing::info!(sink = %name, format = c.format.as_str(), "notifications on");
            sinks.push(sink);
        }
        Ok(Notifier {
            sinks: sinks.into(),
            tasks: Arc::new(std::sync::Mutex::new(tasks)),
            closing: Some(Arc::new(closing)),
        })
    }

    /// True when no sink is configured.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Offer a decision's audit record (`decision` + `tail`) to the sinks whose filter it
    /// matches. Never waits.
    pub(crate) fn decision<S, W>(&self, decision: &DecisionRecord<S, W>, tail: &AuditTail<'_>)
    where
        S: AsRef<str> + Serialize,
        W: std::borrow::Borrow<WorkloadRef> + Serialize,
    {
        if self.sinks.is_empty() {
            return;
        }
        let policy = decision.policy.as_ref().map(AsRef::as_ref);
        let reason = decision.reason.as_str();
        if !self
            .sinks
            .iter()
            .any(|s| s.filter.matches(decision.verdict, reason, policy))
        {
            return;
        }
        self.offer(
            decision.verdict,
            reason,
            policy,
            || {
                let mut line = Vec::with_capacity(512);
                write_line(&mut line, decision, tail).ok()?;
                Some(Bytes::from(line))
            },
            || Facts::of_decision(decision, tail),
        );
    }

    /// Offer any record: `json` builds the JSON body, `facts` what a Slack message says;
    /// each is built at most once, and only when a sink's filter matches.
    pub(crate) fn offer(
        &self,
        verdict: Verdict,
        reason: &str,
        policy: Option<&str>,
        json: impl FnOnce() -> Option<Bytes>,
        facts: impl FnOnce() -> Facts,
    ) {
        let mut json = Some(json);
        let mut facts = Some(facts);
        let mut json_body: Option<Option<Bytes>> = None;
        let mut built: Option<Facts> = None;
        for sink in self.sinks.iter() {
            if !sink.filter.matches(verdict, reason, policy) {
                continue;
            }
            let body = match sink.format {
                NotifyFormat::Json => {
                    if json_body.is_none() {
                        json_body = Some(json.take().and_then(|f| f()));
                    }
                    json_body.clone().flatten()
                }
                NotifyFormat::Slack => {
                    if built.is_none() {
                        built = facts.take().map(|f| f());
                    }
                    built.as_ref().and_then(|f| {
                        serde_json::to_vec(&slack_message(f, sink.link.as_deref()))
                            .ok()
                            .map(Bytes::from)
                    })
                }
            };
            if let Some(body) = body {
                sink.offer(body);
            }
        }
    }

    /// Let the sinks deliver what they hold, for at most `timeout`; what is left is counted as
    /// dropped.
    pub async fn shutdown(&self, timeout: Duration) {
        let Some(closing) = &self.closing else {
            return;
        };
        let _ = closing.send(true);
        let tasks: Vec<JoinHandle<()>> = {
            let mut t = self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            t.drain(..).collect()
        };
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        if tokio::time::timeout(timeout, futures::future::join_all(tasks))
            .await
            .is_err()
        {
            for a in aborts {
                a.abort();
            }
        }
        for s in self.sinks.iter() {
            let left = s.queued.swap(0, Ordering::Relaxed);
            for _ in 0..left {
                s.count(NotifyResult::Dropped);
            }
            if left > 0 {
                tracing::warn!(sink = %s.name, dropped = left, "notifications still queued at shutdown were dropped");
            }
        }
    }
}

/// A sink's worker: delivers its queue in order until shutdown has drained it.
async fn run(sink: Arc<Sink>, mut rx: mpsc::Receiver<Bytes>, mut closing: watch::Receiver<bool>) {
    let mut closed = false;
    loop {
        let body = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => return,
            },
            _ = closing.wait_for(|c| *c), if !closed => {
                // No new messages; deliver what is queued, then stop.
                rx.close();
                closed = true;
                continue;
            }
        };
        let result = sink.deliver(&body).await;
        sink.count(result);
        // Only now: a delivery that shutdown cuts short counts as dropped.
        sink.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Vec<NotifyConfig> {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn a_sink_needs_exactly_one_url_and_known_reasons_and_placeholders() {
        let ok = parse(
            "- {url: 'https://hooks.example/x', format: slack, link: 'https://g/d?ns={namespace}&pod={pod}', filter: {verdicts: [act, defer], reasons: [matched, released], policies: ['reap-*']}}\n",
        );
        validate(&ok).unwrap();
        let cases = [
            ("- {format: json}\n", "give `url` or `url_file`"),
            ("- {url: 'ftp://x/y'}\n", "not an http"),
            (
                "- {url: 'http://x/', filter: {reasons: [matchd]}}\n",
                "unknown reason \"matchd\"",
            ),
            (
                "- {url: 'http://x/', link: 'http://g/{podname}'}\n",
                "unknown placeholder {podname}",
            ),
            ("- {url: 'http://x/', name: 'bad name'}\n", "name must be"),
            ("- {url: 'http://x/', queue_capacity: 0}\n", "at least 1"),
            (
                "- {url: 'http://x/', name: a}\n- {url: 'http://y/', name: a}\n",
                "another sink",
            ),
        ];
        for (yaml, needle) in cases {
            let err = validate(&parse(yaml)).unwrap_err();
            assert!(err.contains(needle), "{yaml}: {err}");
        }
        let err = serde_saphyr::from_str::<Vec<NotifyConfig>>(
            "- {url: 'http://x/', filter: {verdicts: [maybe]}}\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("maybe"), "{err}");
    }

    #[test]
    fn the_default_filter_sends_what_teflon_did_and_releases() {
        let f = Filter::new(&NotifyFilter::default()).unwrap();
        assert!(f.matches(Verdict::Act, "matched", Some("reap")));
        assert!(f.matches(Verdict::Act, "expired", Some("reap")));
        assert!(!f.matches(Verdict::Skip, "no_match", None));
        let f = Filter::new(&NotifyFilter {
            verdicts: Some(vec![Verdict::Act, Verdict::Defer]),
            reasons: None,
            policies: Some(vec!["quarantine-*".to_owned()]),
        })
        .unwrap();
        assert!(f.matches(
            Verdict::Defer,
            "below_min_available",
            Some("quarantine-miners")
        ));
        assert!(!f.matches(Verdict::Act, "matched", Some("reap-shells")));
        assert!(!f.matches(Verdict::Act, "matched", None));
    }

    fn facts() -> Facts {
        Facts {
            verdict: Verdict::Act,
            reason: "matched".to_owned(),
            policy: Some("quarantine-miners".to_owned()),
            title: "quarantine shop/web-1: success".to_owned(),
            rule: Some("Detect crypto miners <stratum> & co".to_owned()),
            namespace: Some("shop".to_owned()),
            pod: Some("web-1".to_owned()),
            workload: Some("Deployment shop/web".to_owned()),
            action: Some("quarantine".to_owned()),
            outcome: Some("success".to_owned()),
            alert_id: Some("3e8-7".to_owned()),
            time: Timestamp::from_secs(0),
            extra: Vec::new(),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_stays_within_the_cap() {
        for attempt in 1..20 {
            let d = backoff(attempt);
            let exp = BASE_DELAY
                .saturating_mul(1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX))
                .min(MAX_DELAY);
            assert!(d >= exp / 2 && d < exp, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn a_slack_message_has_the_facts_as_fields_escaped_and_the_link_filled_in() {
        let m = slack_message(
            &facts(),
            Some("https://grafana.example/d/teflon?var-ns={namespace}&var-pod={pod}&rule={rule}"),
        );
        assert_eq!(
            m["blocks"][0]["text"]["text"],
            "Teflon: quarantine shop/web-1: success"
        );
        let fields: Vec<&str> = m["blocks"][1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "*Rule*\nDetect crypto miners &lt;stratum&gt; &amp; co",
                "*Pod*\nshop/web-1",
                "*Workload*\nDeployment shop/web",
                "*Action*\nquarantine (policy quarantine-miners)",
                "*Outcome*\nsuccess",
                "*Decision*\nact · matched",
            ]
        );
        let context = m["blocks"][2]["elements"][0]["text"].as_str().unwrap();
        assert!(
            context.starts_with("<https://grafana.example/d/teflon?var-ns=shop&var-pod=web-1&rule=Detect%20crypto%20miners%20%3Cstratum%3E%20%26%20co|Open>"),
            "{context}"
        );
        assert!(context.contains("alert 3e8-7"));
    }
}
