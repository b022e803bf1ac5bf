use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn expr(key: &str, op: &str, values: &[&str]) -> SelectorExpression {
    SelectorExpression {
        key: key.to_owned(),
        operator: op.to_owned(),
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    }
}

/// A structured selector as the API would hold it; a refused one selects nothing.
fn sel(ml: &[(&str, &str)], exprs: Vec<SelectorExpression>) -> Selector {
    Selector::from_structured(&StructuredSelector {
        match_labels: labels(ml),
        match_expressions: exprs,
    })
    .unwrap_or_else(|_| Selector::nothing())
}

// --- the string form (moved from teflon-metrics' custom_metrics.rs) ---

#[test]
fn equality_and_inequality_requirements_match_like_kubernetes() {
    let s = Selector::parse("app=web,tier==front,env!=prod").unwrap();
    assert!(s.matches(&labels(&[("app", "web"), ("tier", "front")])));
    assert!(s.matches(&labels(&[
        ("app", "web"),
        ("tier", "front"),
        ("env", "dev")
    ])));
    assert!(!s.matches(&labels(&[
        ("app", "web"),
        ("tier", "front"),
        ("env", "prod")
    ])));
    assert!(!s.matches(&labels(&[("app", "api"), ("tier", "front")])));
}

#[test]
fn set_based_requirements_match_like_kubernetes() {
    let s = Selector::parse("e in (x, y), f notin (z), g, !h").unwrap();
    assert_eq!(s.requirements().len(), 4);
    assert!(s.matches(&labels(&[("e", "x"), ("g", "")])));
    assert!(s.matches(&labels(&[("e", "y"), ("f", "a"), ("g", "1")])));
    assert!(!s.matches(&labels(&[("e", "w"), ("g", "1")])));
    assert!(!s.matches(&labels(&[("e", "x"), ("f", "z"), ("g", "1")])));
    assert!(!s.matches(&labels(&[("e", "x")])));
    assert!(!s.matches(&labels(&[("e", "x"), ("g", "1"), ("h", "1")])));
}

#[test]
fn numeric_comparisons_need_integers() {
    let s = Selector::parse("gen>3,rev<10").unwrap();
    assert!(s.matches(&labels(&[("gen", "4"), ("rev", "9")])));
    assert!(!s.matches(&labels(&[("gen", "3"), ("rev", "9")])));
    assert!(!s.matches(&labels(&[("gen", "four"), ("rev", "9")])));
    assert_eq!(
        Selector::parse("gen>x"),
        Err(SelectorError::NotAnInteger("x".to_owned()))
    );
}

#[test]
fn empty_selector_selects_everything() {
    let s = Selector::parse("  ").unwrap();
    assert!(s.is_empty());
    assert!(s.matches(&labels(&[])));
}

#[test]
fn an_empty_element_of_a_set_is_the_empty_value_as_labels_parse_reads_it() {
    for (text, values) in [
        ("a in (,x)", vec!["", "x"]),
        ("a in (x,)", vec!["x", ""]),
        ("a in (,)", vec!["", ""]),
    ] {
        let s = Selector::parse(text).unwrap();
        assert_eq!(s.requirements()[0].values, values, "{text}");
        assert!(s.matches(&labels(&[("a", "")])), "{text}");
    }
    assert!(Selector::parse("a in ()").is_err());
}

#[test]
fn prefixed_keys_and_empty_values_are_accepted() {
    let s = Selector::parse("app.kubernetes.io/name=web,empty=").unwrap();
    assert!(s.matches(&labels(&[("app.kubernetes.io/name", "web"), ("empty", "")])));
}

#[test]
fn malformed_selectors_are_errors_with_a_position() {
    for bad in [
        "a=b,",
        ",a",
        "a in x",
        "a in ()",
        "a in (x",
        "a b",
        "=b",
        "!",
        "a!b",
        "-a=b",
        "a=b=c",
        "a in (x y)",
        "A/b=c",
    ] {
        assert!(Selector::parse(bad).is_err(), "{bad:?} should not parse");
    }
    let e = Selector::parse("app=web,,x").unwrap_err();
    assert!(e.to_string().contains("position 8"), "{e}");
}

#[test]
fn structured_form_splits_match_labels_and_expressions() {
    let s = Selector::parse("app=web,e in (x,y),f notin (z),g,!h,c!=d").unwrap();
    let json = serde_json::to_value(s.to_structured()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "e", "operator": "In", "values": ["x", "y"]},
                {"key": "f", "operator": "NotIn", "values": ["z"]},
                {"key": "g", "operator": "Exists"},
                {"key": "h", "operator": "DoesNotExist"},
                {"key": "c", "operator": "NotIn", "values": ["d"]},
            ]
        })
    );
}

// --- the structured form (moved from teflon-k8s' selector.rs) ---

#[test]
fn an_empty_selector_matches_any_labels_even_none() {
    assert!(Selector::everything().matches(&labels(&[])));
    assert!(sel(&[], vec![]).matches(&labels(&[("a", "b")])));
}

#[test]
fn match_labels_need_every_pair() {
    let s = sel(&[("app", "web"), ("tier", "fe")], vec![]);
    assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe"), ("x", "y")])));
    assert!(!s.matches(&labels(&[("app", "web")])));
    assert!(!s.matches(&labels(&[("app", "web"), ("tier", "be")])));
    assert!(!s.matches(&labels(&[])));
    // As teflon-sim built them.
    let s = Selector::match_labels([("app", "web"), ("tier", "front")]);
    assert!(s.matches(&labels(&[("app", "web"), ("tier", "front"), ("x", "y")])));
    assert!(!s.matches(&labels(&[("app", "web")])));
}

#[test]
fn in_needs_the_label_with_one_of_the_values() {
    let s = sel(&[], vec![expr("env", "In", &["prod", "stage"])]);
    assert!(s.matches(&labels(&[("env", "prod")])));
    assert!(!s.matches(&labels(&[("env", "dev")])));
    assert!(!s.matches(&labels(&[])));
}

#[test]
fn not_in_matches_a_missing_label_or_another_value() {
    let s = sel(&[], vec![expr("env", "NotIn", &["dev"])]);
    assert!(s.matches(&labels(&[])));
    assert!(s.matches(&labels(&[("env", "prod")])));
    assert!(!s.matches(&labels(&[("env", "dev")])));
}

#[test]
fn exists_and_does_not_exist_look_at_the_key_only() {
    let exists = sel(&[], vec![expr("canary", "Exists", &[])]);
    let absent = sel(&[], vec![expr("canary", "DoesNotExist", &[])]);
    let with = labels(&[("canary", "")]);
    assert!(exists.matches(&with));
    assert!(!exists.matches(&labels(&[])));
    assert!(absent.matches(&labels(&[])));
    assert!(!absent.matches(&with));
}

#[test]
fn labels_and_expressions_must_both_hold() {
    let s = sel(&[("app", "web")], vec![expr("env", "In", &["prod"])]);
    assert!(s.matches(&labels(&[("app", "web"), ("env", "prod")])));
    assert!(!s.matches(&labels(&[("app", "web"), ("env", "dev")])));
    assert!(!s.matches(&labels(&[("app", "db"), ("env", "prod")])));
}

#[test]
fn an_unknown_operator_never_matches() {
    let s = sel(&[], vec![expr("env", "Gt", &["1"])]);
    assert!(!s.matches(&labels(&[("env", "2")])));
}

#[test]
fn selectors_kubernetes_would_refuse_select_nothing() {
    // metav1.LabelSelectorAsSelector refuses these, and the eviction API skips the PDB.
    for bad in [
        expr("env", "In", &[]),
        expr("env", "NotIn", &[]),
        expr("env", "Exists", &["x"]),
        expr("env", "DoesNotExist", &["x"]),
        expr("-env", "Exists", &[]),
        expr("env", "In", &["not valid"]),
    ] {
        let structured = StructuredSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![bad.clone()],
        };
        assert!(Selector::from_structured(&structured).is_err(), "{bad:?}");
        assert!(!sel(&[], vec![bad]).matches(&labels(&[("env", "y")])));
        assert!(!sel(&[], vec![]).selects_nothing());
    }
    assert!(
        Selector::from_structured(&StructuredSelector {
            match_labels: labels(&[("app", "a b")]),
            match_expressions: Vec::new(),
        })
        .is_err()
    );
}

#[test]
fn required_keys_are_match_labels_and_positive_expressions() {
    let s = sel(
        &[("app", "web"), ("pod-template-hash", "abc")],
        vec![
            expr("env", "In", &["prod"]),
            expr("x", "NotIn", &["y"]),
            expr("app", "Exists", &[]),
        ],
    );
    assert_eq!(s.required_keys(), vec!["app", "pod-template-hash", "env"]);
    assert_eq!(
        s.keys().collect::<Vec<_>>(),
        vec!["app", "pod-template-hash", "env", "x"]
    );
}

// --- null selectors (moved from teflon-sim's labels.rs) ---

#[test]
fn a_null_selector_selects_nothing_and_an_empty_one_everything() {
    assert!(!Selector::nothing().matches(&labels(&[("app", "web")])));
    assert!(!Selector::nothing().is_empty());
    assert!(sel(&[], vec![]).matches(&labels(&[])));
}

#[cfg(feature = "k8s-openapi")]
#[test]
fn the_api_type_converts_like_label_selector_as_selector() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    assert!(!Selector::from_api(None).matches(&labels(&[("app", "web")])));
    assert!(Selector::from_api(Some(&LabelSelector::default())).matches(&labels(&[])));
    let api = LabelSelector {
        match_labels: Some(labels(&[("app", "web")])),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "env".to_owned(),
            operator: "NotIn".to_owned(),
            values: Some(vec!["dev".to_owned()]),
        }]),
    };
    let s = Selector::from_api(Some(&api));
    assert_eq!(
        Selector::from_structured(&StructuredSelector::from(&api)),
        Ok(s.clone())
    );
    assert!(s.matches(&labels(&[("app", "web")])));
    assert!(!s.matches(&labels(&[("app", "web"), ("env", "dev")])));
    let bogus = LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "env".to_owned(),
            operator: "Bogus".to_owned(),
            values: None,
        }]),
        ..LabelSelector::default()
    };
    assert!(Selector::from_api(Some(&bogus)).selects_nothing());
}

// --- properties ---

const KEYS: [&str; 3] = ["app", "tier", "example.com/x"];
const VALUES: [&str; 3] = ["web", "db", ""];

fn label_set() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map(
        proptest::sample::select(&KEYS[..]).prop_map(str::to_owned),
        proptest::sample::select(&VALUES[..]).prop_map(str::to_owned),
        0..3,
    )
}

fn structured() -> impl Strategy<Value = StructuredSelector> {
    let values = proptest::collection::vec(proptest::sample::select(&VALUES[..]), 1..3);
    let expression = (
        proptest::sample::select(&KEYS[..]),
        proptest::sample::select(&["In", "NotIn", "Exists", "DoesNotExist"][..]),
        values,
    )
        .prop_map(|(k, op, vs)| SelectorExpression {
            key: k.to_owned(),
            operator: op.to_owned(),
            values: if matches!(op, "In" | "NotIn") {
                vs.into_iter().map(str::to_owned).collect()
            } else {
                Vec::new()
            },
        });
    (label_set(), proptest::collection::vec(expression, 0..3)).prop_map(
        |(match_labels, match_expressions)| StructuredSelector {
            match_labels,
            match_expressions,
        },
    )
}

fn set(values: &[String], sep: &str) -> String {
    let text = values.join(sep);
    if text.is_empty() {
        ",".to_owned()
    } else {
        text
    }
}

/// The string form of a structured selector, written the way kubectl users write it.
fn render(s: &StructuredSelector) -> String {
    let mut parts: Vec<String> = s
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in &s.match_expressions {
        parts.push(match e.operator.as_str() {
            // `()` is the empty set; a set of just the empty value is spelled `(,)`.
            "In" => format!("{} in ({})", e.key, set(&e.values, ",")),
            "NotIn" => format!("{} notin ({})", e.key, set(&e.values, ", ")),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

proptest! {
    #[test]
    fn the_string_and_structured_forms_select_the_same_labels(
        s in structured(),
        sets in proptest::collection::vec(label_set(), 1..8),
    ) {
        let from_structured = Selector::from_structured(&s).unwrap();
        let text = render(&s);
        let parsed = Selector::parse(&text).unwrap();
        let round_trip = Selector::from_structured(&parsed.to_structured()).unwrap();
        for l in &sets {
            let want = from_structured.matches(l);
            prop_assert_eq!(parsed.matches(l), want, "{} on {:?}", text, l);
            prop_assert_eq!(round_trip.matches(l), want, "{} on {:?}", text, l);
            prop_assert_eq!(
                from_structured.matches_by(|k| l.get(k).map(String::as_str)),
                want
            );
        }
    }

    #[test]
    fn removing_a_required_key_deselects(s in structured(), l in label_set()) {
        let sel = Selector::from_structured(&s).unwrap();
        if sel.matches(&l) {
            for key in sel.required_keys() {
                let mut cut = l.clone();
                cut.remove(&key);
                prop_assert!(!sel.matches(&cut), "{} still selects without {}", render(&s), key);
            }
        }
    }

    #[test]
    fn selector_parser_never_panics(input in "\\PC{0,64}") {
        let _ = Selector::parse(&input);
    }

    #[test]
    fn selector_parser_never_panics_on_selector_like_input(
        input in "[a-z!=(),<> ]{0,40}|[a-z]{1,3}( (in|notin) \\([a-z,]{0,6}\\))?(,[!a-z=]{0,5})*"
    ) {
        let _ = Selector::parse(&input);
    }
}
