//! `teflon release` and `teflon history`: the response lifecycle of a running Teflon server,
//! through its HTTP API (`POST /v1/release`, `GET /v1/actions`) with the same bearer token as
//! ingest.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::Exit;
use crate::table::truncate;

/// How long one call to the server may take (a release waits for the API server).
const TIMEOUT: Duration = Duration::from_secs(60);

/// Where the server is and how to authenticate.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The Teflon server's base URL.
    #[arg(long, env = "TEFLON_SERVER", default_value = "http://127.0.0.1:2804")]
    pub server: String,
    /// A file holding the bearer token (else `TEFLON_TOKEN`).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Trust this CA (PEM) for an HTTPS server, besides the system's roots.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

impl ServerArgs {
    fn token(&self) -> anyhow::Result<Option<String>> {
        if let Some(path) = &self.token_file {
            let t = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?;
            return Ok(Some(t.trim().to_owned()));
        }
        Ok(std::env::var("TEFLON_TOKEN")
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty()))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.trim_end_matches('/'))
    }

    /// One call; the status and the JSON answer.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let token = self.token()?;
        let url = self.url(path);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let (status, bytes) = runtime
            .block_on(async {
                let client = teflon_server::http_client::client(self.ca_file.as_deref())?;
                let method = method.parse().map_err(|_| {
                    teflon_server::http_client::HttpError::Request(method.to_owned())
                })?;
                teflon_server::http_client::json_request(
                    &client,
                    method,
                    &url,
                    token.as_deref(),
                    body.map(|b| b.to_string().into_bytes()),
                    TIMEOUT,
                )
                .await
            })
            .with_context(|| format!("{method} {url}"))?;
        if status == 401 {
            bail!(
                "{url}: unauthorized: give the server's bearer token in TEFLON_TOKEN or --token-file"
            );
        }
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({ "error": String::from_utf8_lossy(&bytes).into_owned() }));
        Ok((status, value))
    }
}

/// `teflon release`.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The namespace.
    #[arg(long)]
    pub namespace: String,
    /// A quarantined pod: its labels back, its NetworkPolicy deleted.
    #[arg(long, conflicts_with = "policy", required_unless_present = "policy")]
    pub pod: Option<String>,
    /// Release only the pod with this UID (refused when the pod by that name is another one).
    #[arg(long, requires = "pod")]
    pub uid: Option<String>,
    /// A `block_binary` TracingPolicyNamespaced, deleted.
    #[arg(long)]
    pub policy: Option<String>,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Release: 0 when released, 1 otherwise (with why on `err`).
pub fn release(
    args: &ReleaseArgs,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<Exit> {
    let mut body = json!({ "namespace": args.namespace });
    if let Some(pod) = &args.pod {
        body["pod"] = json!(pod);
    }
    if let Some(uid) = &args.uid {
        body["uid"] = json!(uid);
    }
    if let Some(policy) = &args.policy {
        body["policy"] = json!(policy);
    }
    let (status, reply) = args.server.call("POST", "/v1/release", Some(body))?;
    let what = match (&args.pod, &args.policy) {
        (Some(p), _) => format!("pod {}/{p}", args.namespace),
        (_, Some(p)) => format!("TracingPolicyNamespaced {}/{p}", args.namespace),
        _ => args.namespace.clone(),
    };
    if status == 200 {
        let mut line = format!("released {what}");
        if let Some(p) = reply["policy"].as_str() {
            line.push_str(&format!(
                " ({} by policy {p})",
                reply["action"].as_str().unwrap_or("")
            ));
        }
        if let Some(labels) = reply["restored_labels"]
            .as_object()
            .filter(|l| !l.is_empty())
        {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            line.push_str(&format!("; labels restored: {}", pairs.join(", ")));
        }
        if let Some(np) = reply["network_policy"].as_str() {
            line.push_str(&format!("; NetworkPolicy {np} deleted"));
        }
        writeln!(out, "{line}")?;
        return Ok(Exit::Ok);
    }
    let why = reply["message"]
        .as_str()
        .or_else(|| reply["error"].as_str())
        .unwrap_or("no reason given");
    let kind = match status {
        404 => "not found".to_owned(),
        409 => "refused".to_owned(),
        502 => "failed".to_owned(),
        code => format!("HTTP {code}"),
    };
    writeln!(err, "teflon: release {what}: {kind}: {why}")?;
    Ok(Exit::Failure)
}

/// Output format of `history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    /// Aligned columns.
    Table,
    /// The server's JSON.
    Json,
}

/// `teflon history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Only actions since: an RFC 3339 time or a duration back (`90s`, `15m`, `2h`, `7d`).
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many, newest first.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = HistoryFormat::Table)]
    pub format: HistoryFormat,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

const WIDTHS: [usize; 7] = [20, 12, 40, 20, 8, 21, 0];
const HEADERS: [&str; 7] = [
    "TIME", "ACTION", "TARGET", "POLICY", "STATE", "EXPIRES", "UNDO",
];

fn row(cells: [String; 7]) -> String {
    let mut line = String::new();
    for (cell, width) in cells.iter().zip(WIDTHS) {
        if width == 0 {
            line.push_str(cell);
            continue;
        }
        let cell = truncate(cell, width);
        let pad = width.saturating_sub(cell.chars().count());
        line.push_str(&cell);
        line.extend(std::iter::repeat_n(' ', pad + 2));
    }
    line.trim_end().to_owned()
}

/// RFC 3339 down to the second.
fn short_time(v: &Value) -> String {
    v.as_str()
        .map(|t| t.get(..19).unwrap_or(t).replace('T', " "))
        .unwrap_or_else(|| "-".to_owned())
}

/// History: the actions, newest first.
pub fn history(
    args: &HistoryArgs,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<Exit> {
    let mut query = Vec::new();
    if let Some(ns) = &args.namespace {
        query.push(format!("namespace={}", encode(ns)));
    }
    if let Some(s) = &args.since {
        query.push(format!("since={}", encode(s)));
    }
    if let Some(l) = args.limit {
        query.push(format!("limit={l}"));
    }
    let path = if query.is_empty() {
        "/v1/actions".to_owned()
    } else {
        format!("/v1/actions?{}", query.join("&"))
    };
    let (status, reply) = args.server.call("GET", &path, None)?;
    if status != 200 {
        writeln!(
            err,
            "teflon: history: HTTP {status}: {}",
            reply["error"].as_str().unwrap_or("no reason given")
        )?;
        return Ok(Exit::Failure);
    }
    if let Some(w) = reply["warning"].as_str() {
        writeln!(err, "teflon: warning: {w}")?;
    }
    if args.format == HistoryFormat::Json {
        writeln!(out, "{}", serde_json::to_string_pretty(&reply)?)?;
        return Ok(Exit::Ok);
    }
    writeln!(out, "{}", row(HEADERS.map(str::to_owned)))?;
    for a in reply["actions"].as_array().into_iter().flatten() {
        let target = match (a["pod"].as_str(), a["object"].as_str()) {
            (Some(pod), _) => format!("{}/{pod}", a["namespace"].as_str().unwrap_or("")),
            (None, Some(obj)) => format!("{}/{obj}", a["namespace"].as_str().unwrap_or("")),
            _ => a["namespace"].as_str().unwrap_or("").to_owned(),
        };
        let undo = a["undo"]["command"].as_str().unwrap_or("-").to_owned();
        writeln!(
            out,
            "{}",
            row([
                short_time(&a["time"]),
                a["action"].as_str().unwrap_or("").to_owned(),
                target,
                a["policy"].as_str().unwrap_or("-").to_owned(),
                a["state"].as_str().unwrap_or("").to_owned(),
                if a["state"] == "released" || a["state"] == "expired" {
                    format!("({})", short_time(&a["released_at"]))
                } else {
                    short_time(&a["expires_at"])
                },
                undo,
            ])
        )?;
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode("2024-05-01T10:00:00+02:00"),
            "2024-05-01T10%3A00%3A00%2B02%3A00"
        );
        assert_eq!(encode("15m"), "15m");
    }

    #[test]
    fn a_row_cuts_long_cells_and_leaves_the_undo_command_whole() {
        let r = row([
            "2024-05-01 10:00:00".into(),
            "quarantine".into(),
            format!("shop/{}", "x".repeat(60)),
            "quarantine-miners".into(),
            "active".into(),
            "2024-05-01 11:00:00".into(),
            "teflon release --namespace shop --pod web-1".into(),
        ]);
        assert!(r.contains("…"), "{r}");
        assert!(
            r.ends_with("teflon release --namespace shop --pod web-1"),
            "{r}"
        );
    }
}
