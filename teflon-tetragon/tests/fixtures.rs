//! Every real Tetragon export line under `fixtures/` (see `fixtures/SOURCES.md`) becomes the
//! alert SPEC §2 describes; policy-event variants are built by transforming a real line.

use serde_json::{Value, json};
use teflon_core::{Alert, FieldValue, Priority};
use teflon_tetragon::{
    Event, Ignored, ParseError, any, events_from_reader, events_from_slice, parse_batch,
    parse_event,
};

const TESTDATA: &str = include_str!("fixtures/testdata-events.jsonl");
const DOCS: &str = include_str!("fixtures/docs-examples.jsonl");
const BOOK: &str = include_str!("fixtures/security-observability-book.jsonl");

use Priority::{Informational as Info, Warning};

/// rule, priority, (namespace, pod, container id), time, node
type Row = (
    &'static str,
    Priority,
    Option<(&'static str, &'static str, &'static str)>,
    &'static str,
    Option<&'static str>,
);

const TESTDATA_EXPECTED: [Row; 3] = [
    // Line 1 has no `time`: the process start time stands in.
    (
        "tetragon:process_exec",
        Info,
        Some(("default", "tiefighter", "19a02291e106")),
        "2022-10-18T03:16:18.273546829Z",
        Some("my-node"),
    ),
    (
        "tetragon:process_exec",
        Info,
        Some(("default", "deathstar-6f87496b94-qdlh8", "16ecce28d680")),
        "2022-10-18T03:16:21.373327754Z",
        Some("my-node"),
    ),
    (
        "tetragon:process_exec",
        Info,
        Some(("default", "deathstar-6f87496b94-gjf74", "2405407a0f20")),
        "2022-10-18T03:16:22.225264791Z",
        Some("my-node"),
    ),
];

const KIND: Option<&str> = Some("kind-control-plane");
const DEV: Option<&str> = Some("tetragon-dev-control-plane");

const DOCS_EXPECTED: [Row; 15] = [
    (
        "tetragon:process_exec",
        Info,
        Some(("default", "xwing", "551e161c47d8")),
        "2023-10-06T22:03:57.700326678Z",
        Some("gke-john-632-default-pool-7041cac0-9s95"),
    ),
    (
        "tetragon:process_exec",
        Info,
        Some(("default", "xwing", "551e161c47d8")),
        "2023-10-06T22:03:57.700326678Z",
        Some("gke-john-632-default-pool-7041cac0-9s95"),
    ),
    (
        "tetragon:process_exec",
        Info,
        Some(("default", "xwing", "1fb931d2f6e5")),
        "2022-05-11T12:54:45.615000000Z",
        KIND,
    ),
    (
        "tetragon:process_exit",
        Info,
        Some(("default", "xwing", "1fb931d2f6e5")),
        "2022-05-11T12:54:45.616000000Z",
        KIND,
    ),
    (
        "tetragon:file-monitoring:security_file_permission",
        Warning,
        Some(("default", "file-access", "6b742e38ee3a")),
        "2024-04-14T02:18:14.376304204Z",
        DEV,
    ),
    (
        "tetragon:namespace-access:__x64_sys_setns",
        Warning,
        Some(("default", "xwing", "057dc8d712ab")),
        "2026-01-30T18:15:20.001042828Z",
        DEV,
    ),
    // Events from before Tetragon named policies in its output: an empty policy segment.
    (
        "tetragon::__x64_sys_setgid",
        Warning,
        Some(("default", "xwing", "55936e548de6")),
        "2023-07-05T19:14:30.918977160Z",
        KIND,
    ),
    (
        "tetragon::__x64_sys_setuid",
        Warning,
        Some(("default", "xwing", "55936e548de6")),
        "2023-07-05T19:14:30.918990583Z",
        KIND,
    ),
    (
        "tetragon::commit_creds",
        Warning,
        Some(("default", "xwing", "2e58c8357465")),
        "2023-07-25T12:05:01.410834172Z",
        KIND,
    ),
    (
        "tetragon::security_bprm_creds_from_file",
        Warning,
        Some(("default", "xwing", "775beeb1a25a")),
        "2023-08-02T11:58:53.624096751Z",
        KIND,
    ),
    (
        "tetragon::cap_capable",
        Warning,
        Some(("default", "xwing", "cfb961400ff2")),
        "2023-07-06T10:13:33.834882128Z",
        KIND,
    ),
    (
        "tetragon::security_kernel_module_request",
        Warning,
        Some(("demo-app", "test-pod", "1e910d5cc8d8")),
        "2023-09-09T23:27:42.751151233Z",
        KIND,
    ),
    (
        "tetragon:process_exec",
        Info,
        None,
        "2023-09-09T23:27:42.751300984Z",
        KIND,
    ),
    (
        "tetragon::security_kernel_read_file",
        Warning,
        None,
        "2023-09-09T23:27:42.752425825Z",
        KIND,
    ),
    (
        "tetragon::security_kernel_read_file",
        Warning,
        None,
        "2023-08-30T11:01:22.847554295Z",
        None,
    ),
];

const MK: Option<&str> = Some("minikube");
const ES: &str = "tenant-jobs";

const BOOK_EXPECTED: [Row; 8] = [
    (
        "tetragon:process_exec",
        Info,
        Some((ES, "elasticsearch-56f8fc6988-pb8c7", "86eb9e29a77d")),
        "2022-01-19T16:29:01.861000000Z",
        MK,
    ),
    (
        "tetragon:process_exit",
        Info,
        Some((ES, "elasticsearch-56f8fc6988-pb8c7", "86eb9e29a77d")),
        "2022-01-19T16:29:02.515000000Z",
        MK,
    ),
    (
        "tetragon::__x64_sys_write",
        Warning,
        Some((ES, "elasticsearch-56f8fc6988-sh8rm", "bae66fa9f180")),
        "2021-10-18T20:08:55.567000000Z",
        Some("gke-kprobe-validation-default-pool-b5e9dab6-k0cj"),
    ),
    (
        "tetragon:process_exec",
        Info,
        Some((ES, "elasticsearch-56f8fc6988-65smb", "e6af4dff4ea3")),
        "2022-02-01T18:01:56.410000000Z",
        MK,
    ),
    (
        "tetragon:process_exit",
        Info,
        Some((ES, "elasticsearch-56f8fc6988-65smb", "e6af4dff4ea3")),
        "2022-02-01T18:01:56.411000000Z",
        MK,
    ),
    (
        "tetragon::__x64_sys_read",
        Warning,
        Some((ES, "elasticsearch-56f8fc6988-65smb", "e6af4dff4ea3")),
        "2022-02-01T18:01:56.410000000Z",
        MK,
    ),
    (
        "tetragon:process_exec",
        Info,
        Some(("default", "privileged-pod", "85f791fd8dfa")),
        "2022-01-19T11:16:29.378000000Z",
        MK,
    ),
    // The merlin agent's scp ran outside any pod.
    (
        "tetragon:process_exit",
        Info,
        None,
        "2022-01-19T12:18:59.988000000Z",
        MK,
    ),
];

fn alert(e: Event) -> Alert {
    match e {
        Event::Alert(a) => a,
        Event::Ignored(i) => panic!("unexpected {i}"),
    }
}

fn check_file(name: &str, text: &str, expected: &[Row]) {
    let alerts: Vec<Alert> = parse_batch(text.as_bytes())
        .unwrap()
        .into_iter()
        .map(alert)
        .collect();
    assert_eq!(alerts.len(), expected.len(), "{name}");
    for (i, (a, (rule, priority, target, time, node))) in alerts.iter().zip(expected).enumerate() {
        let at = format!("{name} line {}", i + 1);
        assert_eq!(a.source, "tetragon", "{at}");
        assert_eq!(a.rule, *rule, "{at}");
        assert_eq!(a.priority, *priority, "{at}");
        assert_eq!(a.time.to_rfc3339(), *time, "{at}");
        assert_eq!(a.hostname.as_deref(), *node, "{at}");
        assert_eq!(a.tags, vec!["tetragon".to_owned()], "{at}");
        let got = a.target.as_ref().map(|t| {
            (
                t.namespace.as_str(),
                t.pod.as_str(),
                t.container_id.as_deref().unwrap_or_default(),
            )
        });
        assert_eq!(got, *target, "{at}");
        assert!(
            a.fields.get_str("proc.exepath").is_some(),
            "{at}: proc.exepath"
        );
    }
    let lenient: Vec<Alert> = events_from_slice(text.as_bytes())
        .map(|r| alert(r.unwrap()))
        .collect();
    assert_eq!(lenient, alerts, "{name}");
    let streamed: Vec<Alert> = events_from_reader(text.as_bytes())
        .map(|r| alert(r.unwrap()))
        .collect();
    assert_eq!(streamed, alerts, "{name}");
}

#[test]
fn every_testdata_line_becomes_its_alert() {
    check_file("testdata-events.jsonl", TESTDATA, &TESTDATA_EXPECTED);
}

#[test]
fn every_docs_example_line_becomes_its_alert() {
    check_file("docs-examples.jsonl", DOCS, &DOCS_EXPECTED);
}

#[test]
fn every_security_observability_book_line_becomes_its_alert() {
    check_file("security-observability-book.jsonl", BOOK, &BOOK_EXPECTED);
}

fn line(text: &str, n: usize) -> Value {
    serde_json::from_str(text.lines().nth(n - 1).unwrap()).unwrap()
}

fn parse_value(v: &Value) -> Alert {
    alert(parse_event(v.to_string().as_bytes()).unwrap())
}

#[test]
fn process_fields_get_falco_names_so_falco_policies_match() {
    let a = parse_value(&line(DOCS, 5));
    let f = &a.fields;
    assert_eq!(f.get_str("proc.exepath"), Some("/bin/vi"));
    assert_eq!(f.get_str("proc.name"), Some("vi"));
    assert_eq!(f.get_str("proc.cmdline"), Some("vi /etc/passwd"));
    assert_eq!(f.raw("proc.pid"), Some(&FieldValue::I64(64746)));
    assert_eq!(f.get_str("proc.pname"), Some("sh"));
    assert_eq!(f.get_str("k8s.ns.name"), Some("default"));
    assert_eq!(f.get_str("k8s.pod.name"), Some("file-access"));
    assert_eq!(f.get_str("container.id"), Some("6b742e38ee3a"));
    assert_eq!(
        f.get_str("container.image.repository"),
        Some("docker.io/library/busybox")
    );
    assert_eq!(f.get_str("container.image.tag"), Some("latest"));
    assert_eq!(f.get_str("fd.name"), Some("/etc/passwd"));
    assert_eq!(f.raw("user.loginuid"), Some(&FieldValue::I64(-1)));
    assert_eq!(f.get_str("tetragon.policy_name"), Some("file-monitoring"));
    assert_eq!(
        f.raw("tetragon.args"),
        Some(&FieldValue::List(vec![
            "/etc/passwd".into(),
            FieldValue::I64(2)
        ]))
    );
}

#[test]
fn uint64_values_spelled_as_strings_are_read_as_numbers() {
    let a = parse_value(&line(BOOK, 3));
    let Some(FieldValue::List(args)) = a.fields.raw("tetragon.args") else {
        panic!("no args")
    };
    assert_eq!(args[2], FieldValue::I64(627), "size_arg \"627\"");
    let mut v = line(DOCS, 1);
    v["process_exec"]["process"]["pid"] = json!("18446744073709551615");
    let a = parse_value(&v);
    assert_eq!(a.fields.raw("proc.pid"), Some(&FieldValue::U64(u64::MAX)));
}

#[test]
fn a_sigkill_action_is_critical_and_tagged_prevented_with_the_policy_tags() {
    let mut v = line(DOCS, 5);
    v["process_kprobe"]["action"] = json!("KPROBE_ACTION_SIGKILL");
    v["process_kprobe"]["tags"] = json!(["observability.filesystem", "mitre"]);
    let a = parse_value(&v);
    assert_eq!(a.priority, Priority::Critical);
    assert_eq!(
        a.tags,
        ["tetragon", "observability.filesystem", "mitre", "prevented"]
    );
    assert_eq!(a.rule, "tetragon:file-monitoring:security_file_permission");

    v["process_kprobe"]["action"] = json!("KPROBE_ACTION_OVERRIDE");
    let a = parse_value(&v);
    assert_eq!(a.priority, Priority::Critical);
    assert!(a.has_tag("prevented"));
}

#[test]
fn an_exit_by_signal_names_the_signal_in_the_rule() {
    let mut v = line(DOCS, 4);
    v["process_exit"]["signal"] = json!("SIGKILL");
    v["process_exit"]["status"] = json!(9);
    let a = parse_value(&v);
    assert_eq!(a.rule, "tetragon:process_exit:SIGKILL");
    assert_eq!(a.priority, Priority::Informational);
    assert!(!a.has_tag("prevented"));
    assert_eq!(a.fields.raw("tetragon.status"), Some(&FieldValue::I64(9)));
}

#[test]
fn tracepoint_and_lsm_events_are_policy_events() {
    let kprobe = line(DOCS, 6);
    let body = kprobe["process_kprobe"].clone();
    let mut lsm =
        json!({"process_lsm": body.clone(), "node_name": "n", "time": "2024-01-01T00:00:00Z"});
    lsm["process_lsm"]["function_name"] = json!("bprm_check_security");
    let a = parse_value(&lsm);
    assert_eq!(a.rule, "tetragon:namespace-access:bprm_check_security");
    assert_eq!(a.priority, Priority::Warning);
    let mut tp = json!({"process_tracepoint": body, "time": "2024-01-01T00:00:00.123456Z"});
    let obj = tp["process_tracepoint"].as_object_mut().unwrap();
    obj.remove("function_name");
    obj.insert("subsys".into(), json!("syscalls"));
    obj.insert("event".into(), json!("sys_enter_openat"));
    let a = parse_value(&tp);
    assert_eq!(
        a.rule,
        "tetragon:namespace-access:syscalls/sys_enter_openat"
    );
    assert_eq!(a.time.as_nanos() % 1_000_000_000, 123_456_000);
}

#[test]
fn other_event_kinds_are_ignored_with_a_reason_not_an_error() {
    let mut v = line(DOCS, 1);
    let body = v.as_object_mut().unwrap().remove("process_exec").unwrap();
    v["process_loader"] = body;
    let e = parse_event(v.to_string().as_bytes()).unwrap();
    let Event::Ignored(Ignored { event_type }) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(event_type, "process_loader");
    let Event::Ignored(ignored) = e else {
        unreachable!()
    };
    assert!(ignored.to_string().contains("process_exec"), "{ignored}");
}

#[test]
fn times_with_zero_three_six_and_nine_fractional_digits_are_read() {
    let mut v = line(DOCS, 1);
    for (time, nanos) in [
        ("2023-10-06T22:03:57Z", 0),
        ("2023-10-06T22:03:57.700Z", 700_000_000),
        ("2023-10-06T22:03:57.700326Z", 700_326_000),
        ("2023-10-06T22:03:57.700326678Z", 700_326_678),
    ] {
        v["time"] = json!(time);
        assert_eq!(
            parse_value(&v).time.as_nanos().rem_euclid(1_000_000_000),
            nanos,
            "{time}"
        );
    }
}

#[test]
fn an_object_that_is_no_tetragon_event_is_an_error_naming_the_expected_kinds() {
    let err = parse_event(b"{\"node_name\":\"n\",\"time\":\"2024-01-01T00:00:00Z\"}").unwrap_err();
    assert!(err.to_string().contains("process_exec"), "{err}");
    assert_eq!(parse_event(b""), Err(ParseError::Empty));
}

#[test]
fn a_broken_line_is_reported_and_the_next_lines_still_parse() {
    let mut lines: Vec<&str> = DOCS.lines().collect();
    lines.insert(2, "{\"process_exec\": {\"process\": ");
    let input = lines.join("\n");
    let results: Vec<_> = events_from_slice(input.as_bytes()).collect();
    assert_eq!(results.len(), 16);
    assert_eq!(results[2].as_ref().unwrap_err().line, 3);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 15);
    assert_eq!(parse_batch(input.as_bytes()).unwrap_err().line(), 3);
}

#[test]
fn mixed_falco_and_tetragon_lines_are_each_read_in_their_format() {
    let falco = include_str!("fixtures/01-terminal-shell-k8s-pod-syscall.json");
    let input = format!(
        "{}\n{}\n{}\n",
        DOCS.lines().next().unwrap(),
        falco,
        BOOK.lines().nth(2).unwrap()
    );
    let events: Vec<Alert> = any::events_from_slice(input.as_bytes())
        .map(|r| alert(r.unwrap()))
        .collect();
    let sources: Vec<&str> = events.iter().map(|a| a.source.as_str()).collect();
    assert_eq!(sources, ["tetragon", "syscall", "tetragon"]);
    assert_eq!(events[1].rule, "Terminal shell in container");
    assert_eq!(any::parse_batch(input.as_bytes()).unwrap().len(), 3);
}

#[test]
fn tetragon_alerts_written_as_falco_json_read_back_the_same() {
    for text in [TESTDATA, DOCS, BOOK] {
        for event in parse_batch(text.as_bytes()).unwrap() {
            let a = alert(event);
            let json = teflon_falco::to_falco_json(&a);
            assert_eq!(
                teflon_falco::parse_alert(json.as_bytes()).unwrap(),
                a,
                "{json}"
            );
        }
    }
}
