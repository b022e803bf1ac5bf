//! No input panics the Tetragon parsers.

use proptest::prelude::*;
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "KPROBE_ACTION_SIGKILL",
            "2023-05-25T13:44:05Z",
            "containerd://abc",
            "123"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        let keys = prop::sample::select(vec![
            "process_exec",
            "process_exit",
            "process_kprobe",
            "process_lsm",
            "process_tracepoint",
            "process_loader",
            "process",
            "parent",
            "pod",
            "container",
            "image",
            "name",
            "namespace",
            "id",
            "binary",
            "arguments",
            "pid",
            "time",
            "node_name",
            "args",
            "action",
            "tags",
            "signal",
            "status",
            "function_name",
            "policy_name",
            "file_arg",
            "path",
            "rule",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((keys, inner), 0..8).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

fn parse_every_way(bytes: &[u8]) {
    let _ = teflon_tetragon::parse_event(bytes);
    let _ = teflon_tetragon::parse_batch(bytes);
    let _ = teflon_tetragon::events_from_slice(bytes).count();
    let _ = teflon_tetragon::events_from_reader(bytes).count();
    let _ = teflon_tetragon::any::parse_batch(bytes);
    let _ = teflon_tetragon::any::events_from_slice(bytes).count();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_the_parser(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        parse_every_way(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics_the_parser(value in json_value()) {
        parse_every_way(value.to_string().as_bytes());
        parse_every_way(serde_json::to_string_pretty(&value).unwrap().as_bytes());
    }

    #[test]
    fn arbitrary_json_inside_a_real_event_never_panics(value in json_value(), key in "[a-z_]{1,12}") {
        let mut event: Value = serde_json::from_str(
            include_str!("fixtures/docs-examples.jsonl").lines().nth(4).unwrap(),
        ).unwrap();
        for path in [&["process_kprobe"][..], &["process_kprobe", "process"], &["process_kprobe", "process", "pod"]] {
            let mut target = event.clone();
            let mut slot = &mut target;
            for p in path {
                slot = &mut slot[*p];
            }
            slot[key.as_str()] = value.clone();
            parse_every_way(target.to_string().as_bytes());
        }
        event["process_kprobe"]["args"] = value;
        parse_every_way(event.to_string().as_bytes());
    }
}
