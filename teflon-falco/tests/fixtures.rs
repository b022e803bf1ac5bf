//! Every real Falco alert under `fixtures/` (see `fixtures/SOURCES.md`) parses to the values
//! it carries.

use teflon_core::{Alert, FieldValue, Priority, Target, Timestamp};
use teflon_falco::{
    LineError, ParseError, alerts_from_reader, alerts_from_slice, parse_alert, parse_batch,
};

const FIXTURES: [(&str, &str); 20] = [
    (
        "01",
        include_str!("fixtures/01-terminal-shell-k8s-pod-syscall.json"),
    ),
    (
        "02",
        include_str!("fixtures/02-terminal-shell-legacy-no-source.json"),
    ),
    (
        "03",
        include_str!("fixtures/03-terminal-shell-deployment-pod.json"),
    ),
    (
        "04",
        include_str!("fixtures/04-contact-k8s-api-server.json"),
    ),
    (
        "05",
        include_str!("fixtures/05-contact-k8s-api-server-fission.json"),
    ),
    (
        "06",
        include_str!("fixtures/06-terminal-shell-knative-pretty.json"),
    ),
    (
        "07",
        include_str!("fixtures/07-k8saudit-serviceaccount-created.json"),
    ),
    (
        "08",
        include_str!("fixtures/08-k8saudit-attach-exec-pod.json"),
    ),
    (
        "09",
        include_str!("fixtures/09-k8saudit-disallowed-user.json"),
    ),
    (
        "10",
        include_str!("fixtures/10-k8saudit-attach-exec-pod-ovh.json"),
    ),
    (
        "11",
        include_str!("fixtures/11-internal-metrics-snapshot.json"),
    ),
    (
        "12",
        include_str!("fixtures/12-write-below-binary-dir.json"),
    ),
    (
        "13",
        include_str!("fixtures/13-internal-syscall-event-drop.json"),
    ),
    (
        "14",
        include_str!("fixtures/14-read-sensitive-file-untrusted-host.json"),
    ),
    ("15", include_str!("fixtures/15-gcp-auditlog-plugin.json")),
    ("16", include_str!("fixtures/16-open-from-cat-iso8601.json")),
    (
        "17",
        include_str!("fixtures/17-terminal-shell-2018-teflon.json"),
    ),
    ("18", include_str!("fixtures/18-non-sudo-setuid-2018.json")),
    (
        "19",
        include_str!("fixtures/19-read-sensitive-file-untrusted-k8s-pod.json"),
    ),
    (
        "20",
        include_str!("fixtures/20-aws-cloudtrail-custom-rule.json"),
    ),
];
const JSONL: &str = include_str!("fixtures/alerts.jsonl");

struct Expect {
    rule: &'static str,
    priority: Priority,
    source: &'static str,
    /// namespace, pod, container id
    target: Option<(&'static str, &'static str, Option<&'static str>)>,
    hostname: Option<&'static str>,
    tags: usize,
    time: &'static str,
}

const fn e(
    rule: &'static str,
    priority: Priority,
    source: &'static str,
    target: Option<(&'static str, &'static str, Option<&'static str>)>,
    hostname: Option<&'static str>,
    tags: usize,
    time: &'static str,
) -> Expect {
    Expect {
        rule,
        priority,
        source,
        target,
        hostname,
        tags,
        time,
    }
}

const SHELL: &str = "Terminal shell in container";
const API: &str = "Contact K8S API Server From Container";
const EXEC: &str = "Attach/Exec Pod";
const SENSITIVE: &str = "Read sensitive file untrusted";

use Priority::*;

const EXPECTED: [Expect; 20] = [
    e(
        SHELL,
        Critical,
        "syscall",
        Some(("default", "kubecon", Some("ee97d9c4186f"))),
        Some("falco-xczjd"),
        3,
        "2023-05-25T13:44:05.478445995Z",
    ),
    e(
        SHELL,
        Notice,
        "syscall",
        Some(("default", "alpine", Some("5892b41bcf46"))),
        None,
        0,
        "2021-01-14T23:39:44.834631763Z",
    ),
    e(
        SHELL,
        Notice,
        "syscall",
        Some((
            "default",
            "alpine-deployment-77789455d6-m7flp",
            Some("788861c3cf83"),
        )),
        None,
        0,
        "2021-06-13T19:35:58.532086161Z",
    ),
    e(
        API,
        Notice,
        "syscall",
        Some((
            "openfaas-fn",
            "falco-pod-delete-7dc9f5fbb8-gbfk7",
            Some("12fc4de5ccc3"),
        )),
        None,
        0,
        "2021-04-10T19:27:21.038853452Z",
    ),
    e(
        API,
        Notice,
        "syscall",
        Some((
            "fission-function",
            "poolmgr-go-default-516098-5bdbf8c8f5-g8gvc",
            Some("281c99ea33c2"),
        )),
        None,
        0,
        "2021-07-21T10:37:09.101509967Z",
    ),
    e(
        SHELL,
        Notice,
        "syscall",
        Some(("default", "alpine", Some("f29b261f8831"))),
        None,
        0,
        "2021-01-11T23:46:19.823027590Z",
    ),
    e(
        "K8s Serviceaccount Created",
        Informational,
        "k8s_audit",
        None,
        Some("falco-k8saudit-eks-96d7f6f99-vwjgc"),
        1,
        "2023-05-10T14:09:17.699479000Z",
    ),
    e(
        EXEC,
        Notice,
        "k8s_audit",
        Some(("default", "kubecon", None)),
        Some("falco-k8saudit-eks-96d7f6f99-vwjgc"),
        1,
        "2023-05-10T14:09:24.046826000Z",
    ),
    e(
        "Disallowed K8s User",
        Warning,
        "k8s_audit",
        None,
        Some("my-pool-1-node-921b61"),
        1,
        "2025-02-10T09:15:40.698757000Z",
    ),
    e(
        EXEC,
        Notice,
        "k8s_audit",
        Some(("hello-app", "nginx-676b6c5bbc-4xc6t", None)),
        Some("my-pool-1-node-921b61"),
        1,
        "2025-02-10T09:29:46.302906000Z",
    ),
    e(
        "Falco internal: metrics snapshot",
        Informational,
        "internal",
        None,
        Some("test"),
        0,
        "2025-05-29T22:19:58.960296886Z",
    ),
    e(
        "Write below binary dir",
        Error,
        "syscall",
        None,
        Some("localhost"),
        0,
        "2019-05-17T15:31:56.746609046Z",
    ),
    e(
        "Falco internal: syscall event drop",
        Debug,
        "syscall",
        None,
        Some("host"),
        0,
        "2023-03-03T03:03:03.000000003Z",
    ),
    e(
        SENSITIVE,
        Warning,
        "syscall",
        None,
        Some("x86"),
        6,
        "2025-05-07T12:50:34.502309868Z",
    ),
    e(
        "GCP WAF rule modified or deleted",
        Notice,
        "gcp_auditlog",
        None,
        Some("sherlock"),
        5,
        "2023-07-06T22:43:54.476694000Z",
    ),
    e(
        "open_from_cat",
        Warning,
        "syscall",
        None,
        Some("test-falco-hostname"),
        3,
        "2016-08-04T16:17:57.881781397Z",
    ),
    // A pod name without a namespace is not a target (SPEC: namespace + pod name).
    e(
        SHELL,
        Notice,
        "syscall",
        None,
        None,
        0,
        "2018-03-28T18:37:22.181204909Z",
    ),
    e(
        "Non sudo setuid",
        Notice,
        "syscall",
        None,
        None,
        0,
        "2018-05-24T10:22:15.576767292Z",
    ),
    e(
        SENSITIVE,
        Warning,
        "syscall",
        Some(("trigger-falco-rule", "bayrou", Some("edabb60361fc"))),
        Some("mfernd-k8s-security-control-plane"),
        6,
        "2024-12-22T17:55:52.489810605Z",
    ),
    e(
        "Terraform Managed Resource Modified",
        Warning,
        "aws_cloudtrail",
        None,
        Some("cca3f82eb5b6"),
        3,
        "2026-07-22T14:24:41.000000000Z",
    ),
];

fn check(name: &str, alert: &Alert, want: &Expect) {
    assert_eq!(alert.rule, want.rule, "{name}: rule");
    assert_eq!(alert.priority, want.priority, "{name}: priority");
    assert_eq!(alert.source, want.source, "{name}: source");
    assert_eq!(alert.hostname.as_deref(), want.hostname, "{name}: hostname");
    assert_eq!(alert.tags.len(), want.tags, "{name}: tags");
    assert_eq!(alert.time.to_rfc3339(), want.time, "{name}: time");
    assert_eq!(alert.id, None, "{name}: id");
    assert!(!alert.fields.is_empty(), "{name}: fields");
    assert!(!alert.output.is_empty(), "{name}: output");
    let got = alert.target.as_ref().map(|t| {
        (
            t.namespace.as_str(),
            t.pod.as_str(),
            t.container_id.as_deref(),
        )
    });
    assert_eq!(got, want.target, "{name}: target");
}

#[test]
fn every_falco_fixture_parses_to_its_rule_priority_source_and_target() {
    for ((name, text), want) in FIXTURES.iter().zip(&EXPECTED) {
        let alert = parse_alert(text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        check(name, &alert, want);
    }
}

#[test]
fn the_json_lines_batch_holds_the_same_twenty_alerts() {
    let batch = parse_batch(JSONL.as_bytes()).unwrap();
    assert_eq!(batch.len(), 20);
    for (((name, text), want), alert) in FIXTURES.iter().zip(&EXPECTED).zip(&batch) {
        check(name, alert, want);
        assert_eq!(alert, &parse_alert(text.as_bytes()).unwrap(), "{name}");
    }
    let lenient: Vec<Alert> = alerts_from_slice(JSONL.as_bytes())
        .map(Result::unwrap)
        .collect();
    assert_eq!(lenient, batch);
    let streamed: Vec<Alert> = alerts_from_reader(JSONL.as_bytes())
        .map(Result::unwrap)
        .collect();
    assert_eq!(streamed, batch);
}

#[test]
fn the_fixture_files_concatenated_pretty_ones_included_stream_as_twenty_alerts() {
    let all: String = FIXTURES
        .iter()
        .map(|(_, t)| format!("{}\n", t.trim_end()))
        .collect();
    let expected = parse_batch(JSONL.as_bytes()).unwrap();
    let lenient: Vec<Alert> = alerts_from_slice(all.as_bytes())
        .map(Result::unwrap)
        .collect();
    assert_eq!(lenient, expected);
    let streamed: Vec<Alert> = alerts_from_reader(all.as_bytes())
        .map(Result::unwrap)
        .collect();
    assert_eq!(streamed, expected);
    assert_eq!(parse_batch(all.as_bytes()).unwrap(), expected);
}

#[test]
fn a_json_array_of_the_fixtures_is_a_batch() {
    let body = format!(
        "[{}]",
        FIXTURES
            .iter()
            .map(|(_, t)| *t)
            .collect::<Vec<_>>()
            .join(",")
    );
    let expected = parse_batch(JSONL.as_bytes()).unwrap();
    assert_eq!(parse_batch(body.as_bytes()).unwrap(), expected);
    let lenient: Vec<Alert> = alerts_from_slice(body.as_bytes())
        .map(Result::unwrap)
        .collect();
    assert_eq!(lenient, expected);
}

#[test]
fn missing_source_means_syscall_and_missing_tags_mean_none() {
    let a = parse_alert(FIXTURES[1].1.as_bytes()).unwrap();
    assert_eq!(a.source, "syscall");
    assert!(a.tags.is_empty());
}

#[test]
fn output_fields_keep_their_json_types() {
    let a = parse_alert(FIXTURES[0].1.as_bytes()).unwrap();
    assert_eq!(
        a.fields.raw("evt.time"),
        Some(&FieldValue::I64(1_685_022_245_478_445_995))
    );
    assert_eq!(a.fields.raw("user.loginuid"), Some(&FieldValue::I64(-1)));
    assert_eq!(
        a.fields.get_str("proc.cmdline"),
        Some("sh -c clear; (bash || ash || sh)")
    );
    let metrics = parse_alert(FIXTURES[10].1.as_bytes()).unwrap();
    assert_eq!(
        metrics.fields.raw("falco.evts_rate_sec"),
        Some(&FieldValue::F64(1846.4))
    );
    assert_eq!(
        metrics.fields.raw("scap.n_drops_perc"),
        Some(&FieldValue::F64(0.0))
    );
    assert_eq!(metrics.fields.len(), 21);
    let drops = parse_alert(FIXTURES[12].1.as_bytes()).unwrap();
    assert_eq!(drops.fields.get_str("n_drops"), Some("815508"));
    let audit = parse_alert(FIXTURES[8].1.as_bytes()).unwrap();
    assert_eq!(audit.fields.get_str("ka.response.code"), Some("200"));
}

#[test]
fn null_and_na_values_are_kept_raw_but_read_as_absent() {
    let a = parse_alert(FIXTURES[18].1.as_bytes()).unwrap();
    assert_eq!(
        a.fields.raw("proc.aname[2]"),
        Some(&FieldValue::Str("<NA>".into()))
    );
    assert_eq!(a.fields.get("proc.aname[2]"), None);
    assert_eq!(a.fields.raw("proc.aname[3]"), Some(&FieldValue::Null));
    assert_eq!(a.fields.get("proc.aname[3]"), None);
    let legacy = parse_alert(FIXTURES[16].1.as_bytes()).unwrap();
    assert_eq!(legacy.fields.raw("proc.pname"), Some(&FieldValue::Null));
}

#[test]
fn bracketed_keys_and_host_containers_are_read() {
    let a = parse_alert(FIXTURES[13].1.as_bytes()).unwrap();
    assert_eq!(a.fields.get_str("proc.aname[4]"), Some("kitty"));
    assert_eq!(a.fields.get_str("container.id"), Some("host"));
    assert_eq!(a.target, None);
    let audit = parse_alert(FIXTURES[7].1.as_bytes()).unwrap();
    assert_eq!(audit.fields.get_str("ka.uri.param[command]"), Some("sh"));
}

fn fixture_value(i: usize) -> serde_json::Value {
    serde_json::from_str(FIXTURES[i].1).unwrap()
}

#[test]
fn a_falcosidekick_body_gives_the_uuid_as_id_and_reads_shorter_times() {
    // falcosidekick forwards Falco's alert with a uuid, Go's RFC3339Nano time (trailing zeros
    // trimmed, here cut to microseconds) and without hostname.
    let mut body = fixture_value(0);
    let obj = body.as_object_mut().unwrap();
    obj.insert("uuid".into(), "2e9a2ad5-e5b0-4a5a-a4d4-1b59b4b1c9a3".into());
    obj.remove("hostname");
    let time = obj["time"].as_str().unwrap().to_owned();
    let micros = format!("{}Z", &time[..time.len() - 4]);
    obj.insert("time".into(), micros.clone().into());
    let alert = parse_alert(body.to_string().as_bytes()).unwrap();
    let original = parse_alert(FIXTURES[0].1.as_bytes()).unwrap();
    assert_eq!(
        alert.id.as_deref(),
        Some("2e9a2ad5-e5b0-4a5a-a4d4-1b59b4b1c9a3")
    );
    assert_eq!(alert.hostname, None);
    assert_eq!(micros, "2023-05-25T13:44:05.478445Z");
    assert_eq!(alert.time.as_nanos(), original.time.as_nanos() - 995);
    assert_eq!(alert.target, original.target);
    assert_eq!(alert.priority, Priority::Critical);
}

#[test]
fn priorities_are_read_case_insensitively_and_info_means_informational() {
    for (spelling, want) in [
        ("CRITICAL", Priority::Critical),
        ("critical", Priority::Critical),
        ("Info", Priority::Informational),
        ("warning", Priority::Warning),
        ("EMERGENCY", Priority::Emergency),
    ] {
        let mut body = fixture_value(0);
        body["priority"] = spelling.into();
        let alert = parse_alert(body.to_string().as_bytes()).unwrap();
        assert_eq!(alert.priority, want, "{spelling}");
    }
}

#[test]
fn integers_beyond_i64_stay_unsigned_and_numbers_where_strings_are_usual_are_kept() {
    let mut body = fixture_value(3);
    body["output_fields"]["evt.num"] = serde_json::json!(u64::MAX);
    body["output_fields"]["fd.sport"] = serde_json::json!(4444);
    body["output_fields"]["k8s.pod.name"] = serde_json::json!(12345);
    body["output_fields"]["proc.aname"] = serde_json::json!(["sh", null, 1.5, true]);
    let alert = parse_alert(body.to_string().as_bytes()).unwrap();
    assert_eq!(
        alert.fields.raw("evt.num"),
        Some(&FieldValue::U64(u64::MAX))
    );
    assert_eq!(alert.fields.raw("fd.sport"), Some(&FieldValue::I64(4444)));
    assert_eq!(
        alert.target,
        Some(Target {
            container_id: Some("12fc4de5ccc3".into()),
            ..Target::new("openfaas-fn", "12345")
        })
    );
    assert_eq!(
        alert.fields.raw("proc.aname"),
        Some(&FieldValue::List(vec![
            FieldValue::Str("sh".into()),
            FieldValue::Null,
            FieldValue::F64(1.5),
            FieldValue::Bool(true),
        ]))
    );
}

#[test]
fn k8smeta_fields_give_the_target_when_k8s_fields_are_missing() {
    let mut body = fixture_value(0);
    let fields = body["output_fields"].as_object_mut().unwrap();
    let ns = fields.remove("k8s.ns.name").unwrap();
    let pod = fields.remove("k8s.pod.name").unwrap();
    fields.insert("k8smeta.ns.name".into(), ns);
    fields.insert("k8smeta.pod.name".into(), pod);
    fields.insert(
        "k8smeta.pod.uid".into(),
        "9f1c2d3e-0000-4000-8000-000000000001".into(),
    );
    let alert = parse_alert(body.to_string().as_bytes()).unwrap();
    let t = alert.target.unwrap();
    assert_eq!(
        (t.namespace.as_str(), t.pod.as_str()),
        ("default", "kubecon")
    );
    assert_eq!(
        t.uid.as_deref(),
        Some("9f1c2d3e-0000-4000-8000-000000000001")
    );
}

#[test]
fn an_unknown_priority_is_an_error_with_its_position_and_the_expected_names() {
    let body = FIXTURES[0]
        .1
        .replace("\"priority\":\"Critical\"", "\"priority\":\"Critcal\"");
    let err = parse_alert(body.as_bytes()).unwrap_err();
    assert_eq!(err.line(), 1);
    assert!(err.column() > 1);
    let text = err.to_string();
    assert!(text.starts_with("line 1, column "), "{text}");
    assert!(
        text.contains("\"Critcal\"") && text.contains("Emergency, Alert"),
        "{text}"
    );
}

#[test]
fn a_missing_rule_or_time_is_named_in_the_error() {
    let mut body = fixture_value(0);
    body.as_object_mut().unwrap().remove("rule");
    let err = parse_alert(body.to_string().as_bytes()).unwrap_err();
    assert!(err.to_string().contains("missing `rule`"), "{err}");
    let mut body = fixture_value(0);
    body["time"] = "yesterday".into();
    let err = parse_alert(body.to_string().as_bytes()).unwrap_err();
    assert!(err.to_string().contains("`time`"), "{err}");
}

#[test]
fn a_bad_line_fails_the_batch_but_the_lenient_reader_skips_it() {
    let mut lines: Vec<&str> = JSONL.lines().collect();
    lines.insert(5, "{\"rule\": \"broken\", ");
    let input = lines.join("\n");
    let err = parse_batch(input.as_bytes()).unwrap_err();
    assert_eq!(err.line(), 6, "{err}");
    let results: Vec<Result<Alert, LineError>> = alerts_from_slice(input.as_bytes()).collect();
    assert_eq!(results.len(), 21);
    let bad: Vec<&LineError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].line, 6);
    let from_reader: Vec<_> = alerts_from_reader(input.as_bytes()).collect();
    assert_eq!(from_reader, results);
}

#[test]
fn empty_input_is_an_error_for_a_batch_and_nothing_for_a_stream() {
    assert_eq!(parse_batch(b" \n\t"), Err(ParseError::Empty));
    assert_eq!(parse_batch(b"[]"), Ok(vec![]));
    assert_eq!(alerts_from_slice(b"\n\n").count(), 0);
}

#[test]
fn the_fixture_times_read_nine_digits_exactly() {
    let a = parse_alert(FIXTURES[12].1.as_bytes()).unwrap();
    assert_eq!(a.time, Timestamp::from_nanos(1_677_812_583_000_000_003));
}
