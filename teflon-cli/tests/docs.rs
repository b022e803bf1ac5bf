//! The YAML in the documentation is checked like a user's file would be.
//!
//! Every ```` ```yaml ```` block of `README.md`, the other top-level `*.md` files and `docs/*.md`
//! is read as YAML and sorted by its shape:
//!
//! - a **policy file** (a map with `version`, or with `policies` and only policy-file keys) goes
//!   through the code path of `teflon check --policies FILE`;
//! - a **list of policies** (a sequence of maps with an `action`) goes through the same path,
//!   inside `version: 1` / `policies:`;
//! - a **server configuration** (any other map with a `teflon-server` configuration key at the
//!   top, so that a misspelt key beside real ones is caught) goes through `teflon_server::Config::parse`, the parser `teflon-server --config` uses; a
//!   block without `policies` or `auth` gets `policies: policies.yaml` and `auth: none` added,
//!   so that a block showing one section is still checked key by key;
//! - anything else (Kubernetes manifests, Helm values, a `fields:` excerpt) is not Teflon's and
//!   is only required to be valid YAML.
//!
//! A block that is deliberately incomplete (placeholders such as `…`, one key out of its
//! context) is marked `partial` in its fence, ```` ```yaml partial ````, and skipped. GitHub and
//! other renderers take the first word of the fence as the language, so the mark is invisible
//! to readers.

use std::path::{Path, PathBuf};

use serde_json::Value;
use teflon_cli::Exit;

/// The keys of a policy file.
const POLICY_FILE_KEYS: [&str; 3] = ["version", "defaults", "policies"];

/// The top-level keys of `teflon-server`'s configuration (`teflon_server::Config`).
const CONFIG_KEYS: [&str; 19] = [
    "listen",
    "policies",
    "cluster",
    "auth",
    "tls",
    "metrics_api",
    "audit_log",
    "state_dir",
    "queue_capacity",
    "max_body_bytes",
    "max_concurrent_actions",
    "action_deadline_secs",
    "autoscale",
    "leader_election",
    "notify",
    "http",
    "max_alerts_per_request",
    "audit_max_bytes",
    "audit_max_files",
];

/// One fenced YAML block.
#[derive(Debug)]
struct Block {
    /// `docs/x.md:LINE` of the opening fence.
    at: String,
    text: String,
    partial: bool,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("teflon-cli sits in the workspace")
        .to_path_buf()
}

/// The Markdown files users read: the top-level ones and `docs/`.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [root.to_path_buf(), root.join("docs")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The ```` ```yaml ```` (or `yml`) blocks of a Markdown text, fences indented or not.
fn yaml_blocks(name: &str, markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, usize, bool, String)> = None; // line, indent, partial, text
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let mut words = info.split_whitespace();
                    if matches!(words.next(), Some("yaml" | "yml")) {
                        let partial = words.any(|w| w == "partial");
                        open = Some((i + 1, indent, partial, String::new()));
                    } else {
                        // Another language's block: skip to its closing fence.
                        open = Some((i + 1, usize::MAX, true, String::new()));
                    }
                }
            }
            Some((start, block_indent, partial, text)) => {
                if trimmed.starts_with("```") {
                    if *block_indent != usize::MAX {
                        blocks.push(Block {
                            at: format!("{name}:{start}"),
                            text: std::mem::take(text),
                            partial: *partial,
                        });
                    }
                    open = None;
                } else if *block_indent != usize::MAX {
                    // A fence indented under a list item: its lines carry the same indent.
                    let cut = line
                        .char_indices()
                        .take_while(|(j, c)| *j < *block_indent && *c == ' ')
                        .count();
                    text.push_str(&line[cut..]);
                    text.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "{name}: a code block is never closed");
    blocks
}

/// What a block is, by its shape.
#[derive(Debug, PartialEq)]
enum Kind {
    PolicyFile,
    PolicyList,
    Config,
    Other,
}

fn kind(value: &Value) -> Kind {
    match value {
        Value::Object(map) => {
            let keys: Vec<&str> = map.keys().map(String::as_str).collect();
            let only = |allowed: &[&str]| keys.iter().all(|k| allowed.contains(k));
            if keys.contains(&"version") || (keys.contains(&"policies") && only(&POLICY_FILE_KEYS))
            {
                Kind::PolicyFile
            } else if keys.iter().any(|k| CONFIG_KEYS.contains(k)) {
                Kind::Config
            } else {
                Kind::Other
            }
        }
        Value::Array(items)
            if !items.is_empty()
                && items
                    .iter()
                    .all(|i| i.as_object().is_some_and(|m| m.contains_key("action"))) =>
        {
            Kind::PolicyList
        }
        _ => Kind::Other,
    }
}

/// `teflon check --policies FILE` on `text`: `Err(what it printed)` when it fails.
fn teflon_check(dir: &Path, text: &str) -> Result<(), String> {
    let path = dir.join("policies.yaml");
    std::fs::write(&path, text).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let exit = teflon_cli::check::run(&path, &mut out, &mut err).unwrap();
    if exit == Exit::Ok {
        Ok(())
    } else {
        Err(format!(
            "`teflon check` exits {exit:?}:\n{}\n--- checked as ---\n{text}",
            String::from_utf8_lossy(&err)
        ))
    }
}

/// The same block as a whole configuration: with `policies` and `auth` when it lacks them.
fn completed_config(value: &Value, text: &str) -> String {
    let mut full = String::new();
    if value.get("policies").is_none() {
        full.push_str("policies: policies.yaml\n");
    }
    if value.get("auth").is_none() {
        full.push_str("auth: none\n");
    }
    full.push_str(text);
    full
}

/// Checks one block; `Ok(kind)` when it passes.
fn check(block: &Block, dir: &Path) -> Result<Kind, String> {
    let value: Value = serde_saphyr::from_str(&block.text).map_err(|e| {
        format!("not valid YAML ({e}); mark it `yaml partial` if that is deliberate")
    })?;
    let kind = kind(&value);
    match kind {
        Kind::PolicyFile => teflon_check(dir, &block.text)?,
        Kind::PolicyList => {
            let indented: String = block.text.lines().map(|l| format!("  {l}\n")).collect();
            teflon_check(dir, &format!("version: 1\npolicies:\n{indented}"))?;
        }
        Kind::Config => {
            let full = completed_config(&value, &block.text);
            teflon_server::Config::parse(&full, "config.yaml").map_err(|e| {
                format!("teflon-server's configuration parser refuses it: {e}\n--- checked as ---\n{full}")
            })?;
        }
        Kind::Other => {}
    }
    Ok(kind)
}

#[test]
fn every_complete_yaml_block_in_the_docs_passes_teflon_check_or_the_config_parser() {
    let root = workspace_root();
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut checked = Vec::new();
    for file in markdown_files(&root) {
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        let markdown = std::fs::read_to_string(&file).unwrap();
        for block in yaml_blocks(&name, &markdown) {
            if block.partial {
                continue;
            }
            match check(&block, dir.path()) {
                Ok(kind) => checked.push((block.at, kind)),
                Err(e) => failures.push(format!("{}: {e}", block.at)),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "YAML blocks in the docs that a user could not use as they are (fix them, or mark the \
         fence `yaml partial`):\n\n{}",
        failures.join("\n\n")
    );
    // The reference documents' own examples are among those checked, so the test cannot pass
    // by checking nothing.
    let count = |k: Kind| checked.iter().filter(|(_, kind)| *kind == k).count();
    assert!(
        count(Kind::PolicyFile) + count(Kind::PolicyList) >= 5,
        "{checked:?}"
    );
    assert!(
        checked
            .iter()
            .any(|(at, k)| at.starts_with("docs/configuration.md") && *k == Kind::Config),
        "{checked:?}"
    );
}

#[test]
fn a_broken_policy_or_config_block_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let markdown = "text\n\n```yaml\n- name: typo\n  match: {priority: \">=Critcal\"}\n  action: {type: delete}\n```\n\n```yaml\nqueue_capacty: 5\n```\n\n```yaml partial\nversion: 1\npolicies: [ … ]\n```\n\n```sh\necho not yaml: [\n```\n";
    let blocks = yaml_blocks("t.md", markdown);
    assert_eq!(blocks.len(), 3);
    let policy = check(&blocks[0], dir.path()).unwrap_err();
    assert!(policy.contains("Critcal"), "{policy}");
    // A block of nothing but unknown keys is not recognised as configuration…
    assert_eq!(check(&blocks[1], dir.path()).unwrap(), Kind::Other);
    // …one with a real key is, and the parser names a misspelt one, at the top or nested.
    for (text, typo) in [
        ("queue_capacity: 5\nqueue_capacty: 5\n", "queue_capacty"),
        (
            "queue_capacity: 5\nhttp: {max_conections: 5}\n",
            "max_conections",
        ),
    ] {
        let config = Block {
            at: "t.md:1".to_owned(),
            text: text.to_owned(),
            partial: false,
        };
        let err = check(&config, dir.path()).unwrap_err();
        assert!(err.contains(typo), "{err}");
    }
    assert!(blocks[2].partial);
    assert_eq!(blocks[2].at, "t.md:13");
}

#[test]
fn the_config_key_list_matches_the_server_configuration() {
    // The server names every key it knows when it refuses an unknown one: the list is that.
    let err =
        teflon_server::Config::parse("policies: p.yaml\nauth: none\nnot_a_key: 1\n", "t.yaml")
            .unwrap_err()
            .to_string();
    let known = err
        .split_once("expected one of ")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("the server no longer lists its keys: {err}"));
    let mut known: Vec<&str> = known
        .split(',')
        .map(|k| k.trim().trim_matches('`'))
        .collect();
    let mut listed = CONFIG_KEYS.to_vec();
    known.sort_unstable();
    listed.sort_unstable();
    assert_eq!(
        known, listed,
        "CONFIG_KEYS must list teflon-server's configuration keys"
    );
    // And a configuration with every one of them set parses.
    let text = "listen: \"127.0.0.1:2804\"\npolicies: p.yaml\ncluster: {type: sim}\nauth: none\n\
                tls: {cert_file: c.pem, key_file: k.pem}\nmetrics_api: {}\naudit_log: a.jsonl\n\
                state_dir: s\nqueue_capacity: 1\nmax_body_bytes: 1\nmax_concurrent_actions: 1\n\
                action_deadline_secs: 1\nautoscale: []\nleader_election: {}\nnotify: []\nhttp: {}\n\
                max_alerts_per_request: 1\naudit_max_bytes: 0\naudit_max_files: 1\n";
    teflon_server::Config::parse(text, "t.yaml").unwrap();
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.trim()))
        .collect();
    assert_eq!(keys, CONFIG_KEYS);
}

/// GitHub's anchor of a heading: lowercase, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks).
fn anchors(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.push(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

/// The `](target)` links of a Markdown text that point into the repository.
fn local_links(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    for piece in markdown.split("](").skip(1) {
        let Some(end) = piece.find(')') else { continue };
        let target = &piece[..end];
        if !target.contains("://") && !target.starts_with("mailto:") && !target.is_empty() {
            out.push(target.to_owned());
        }
    }
    out
}

#[test]
fn every_link_between_the_docs_reaches_a_file_and_a_heading() {
    let root = workspace_root();
    let mut broken = Vec::new();
    let mut with_heading = 0;
    for file in markdown_files(&root) {
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        let markdown = std::fs::read_to_string(&file).unwrap();
        let dir = file.parent().unwrap();
        for link in local_links(&markdown) {
            with_heading += usize::from(link.contains('#'));
            let (path, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            if !target.exists() {
                broken.push(format!("{name}: {link}: no such file"));
                continue;
            }
            if !fragment.is_empty() && target.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&target).unwrap();
                if !anchors(&text).iter().any(|a| a == fragment) {
                    broken.push(format!("{name}: {link}: no such heading"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(
        with_heading >= 20,
        "only {with_heading} links to headings were found"
    );
}

#[test]
fn anchors_are_spelt_as_github_spells_them() {
    assert_eq!(anchor(" `GET /v1/decisions`"), "get-v1decisions");
    assert_eq!(anchor(" Release (undo)"), "release-undo");
    assert_eq!(anchor(" `metrics_api`"), "metrics_api");
    assert_eq!(
        local_links("see [a](b.md#c) and [d](https://x/y)"),
        ["b.md#c"]
    );
}
