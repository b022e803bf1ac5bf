//! Invariants: no input panics the parsers; an alert written as Falco JSON reads back the same.

use proptest::prelude::*;
use serde_json::Value;
use teflon_core::{Alert, FieldValue, Fields, Priority, Timestamp};
use teflon_falco::{
    alerts_from_reader, alerts_from_slice, extract_target, parse_alert, parse_batch, to_falco_json,
};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "Critical",
            "info",
            "<NA>",
            "2023-05-25T13:44:05Z",
            "pods",
            "k8s_audit"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        let keys = prop::sample::select(vec![
            "rule",
            "priority",
            "time",
            "source",
            "tags",
            "output_fields",
            "uuid",
            "hostname",
            "output",
            "k8s.ns.name",
            "k8s.pod.name",
            "ka.target.resource",
            "container.id",
            "x",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((keys, inner), 0..8).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

fn parse_every_way(bytes: &[u8]) {
    let _ = parse_alert(bytes);
    let _ = parse_batch(bytes);
    let _ = alerts_from_slice(bytes).count();
    let _ = alerts_from_reader(bytes).count();
}

fn field_value() -> impl Strategy<Value = FieldValue> {
    let leaf = prop_oneof![
        Just(FieldValue::Null),
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i64>().prop_map(FieldValue::I64),
        ((i64::MAX as u64 + 1)..=u64::MAX).prop_map(FieldValue::U64),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(FieldValue::F64),
        "\\PC{0,16}".prop_map(FieldValue::from),
        Just(FieldValue::Str("<NA>".into())),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(FieldValue::List)
    })
}

fn alert() -> impl Strategy<Value = Alert> {
    let keys = prop_oneof![
        prop::sample::select(vec![
            "k8s.ns.name",
            "k8s.pod.name",
            "k8s.pod.uid",
            "container.id",
            "proc.aname[2]",
            "k8smeta.ns.name",
            "k8smeta.pod.name",
            "ka.target.resource",
            "ka.target.namespace",
            "ka.target.name",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,12}",
    ];
    (
        proptest::option::of("\\PC{1,36}"),
        prop::sample::select(vec!["syscall", "k8s_audit", "internal", "aws_cloudtrail"]),
        "\\PC{0,40}",
        prop::sample::select(Priority::ALL.to_vec()),
        any::<i64>(),
        "\\PC{0,60}",
        prop::collection::vec("\\PC{0,12}", 0..5),
        prop::collection::vec((keys, field_value()), 0..12),
        proptest::option::of("\\PC{0,20}"),
    )
        .prop_map(
            |(id, source, rule, priority, nanos, output, tags, fields, hostname)| {
                let mut f = Fields::new();
                for (k, v) in fields {
                    f.push(k, v);
                }
                let mut a = Alert::new(rule, priority, Timestamp::from_nanos(nanos));
                a.id = id;
                source.clone_into(&mut a.source);
                a.output = output;
                a.tags = tags;
                a.target = extract_target(source, &f);
                a.fields = f;
                a.hostname = hostname;
                a
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_the_parser(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        parse_every_way(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics_the_parser(value in json_value()) {
        let compact = value.to_string();
        parse_every_way(compact.as_bytes());
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        parse_every_way(pretty.as_bytes());
    }

    #[test]
    fn any_json_value_is_accepted_as_an_output_field(value in json_value()) {
        let mut body: Value = serde_json::from_str(
            include_str!("fixtures/01-terminal-shell-k8s-pod-syscall.json"),
        ).unwrap();
        body["output_fields"]["fuzzed"] = value;
        prop_assert!(parse_alert(body.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn an_alert_written_as_falco_json_reads_back_the_same(a in alert()) {
        let json = to_falco_json(&a);
        let back = parse_alert(json.as_bytes());
        prop_assert_eq!(back.as_ref(), Ok(&a), "{}", json);
        let line = format!("{json}\n{json}\n");
        prop_assert_eq!(parse_batch(line.as_bytes()), Ok(vec![a.clone(), a]));
    }
}
