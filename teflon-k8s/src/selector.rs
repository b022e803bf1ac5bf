//! Label-selector matching, the way the API server does it (`metav1.LabelSelector`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// True when `labels` satisfy every `matchLabels` pair and every `matchExpressions` term.
///
/// An empty selector matches everything (callers decide what a *missing* selector means:
/// for a `policy/v1` PodDisruptionBudget it selects nothing). An unknown operator never
/// matches: the API server rejects such selectors, and guessing could widen an action.
pub fn selector_matches(
    selector: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    selector_matches_by(selector, |k| {
        labels.and_then(|l| l.get(k)).map(String::as_str)
    })
}

/// [`selector_matches`] over any label store: `get` looks a label's value up by key.
pub fn selector_matches_by<'a>(
    selector: &LabelSelector,
    get: impl Fn(&str) -> Option<&'a str>,
) -> bool {
    if let Some(want) = &selector.match_labels
        && !want.iter().all(|(k, v)| get(k) == Some(v.as_str()))
    {
        return false;
    }
    let Some(exprs) = &selector.match_expressions else {
        return true;
    };
    exprs.iter().all(|e| {
        let value = get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
            "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    })
}

/// The label keys a pod must carry for `selector` to select it: every `matchLabels` key and
/// the keys of `In` / `Exists` expressions. Removing any one of them takes the pod out.
pub fn required_keys(selector: &LabelSelector) -> Vec<String> {
    let mut keys: Vec<String> = selector
        .match_labels
        .iter()
        .flat_map(|m| m.keys().cloned())
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        if matches!(e.operator.as_str(), "In" | "Exists") && !keys.contains(&e.key) {
            keys.push(e.key.clone());
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_owned(),
            operator: op.to_owned(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|v| (*v).to_owned()).collect())
            },
        }
    }

    fn sel(ml: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>) -> LabelSelector {
        LabelSelector {
            match_labels: if ml.is_empty() {
                None
            } else {
                Some(labels(ml))
            },
            match_expressions: if exprs.is_empty() { None } else { Some(exprs) },
        }
    }

    #[test]
    fn an_empty_selector_matches_any_labels_even_none() {
        assert!(selector_matches(&LabelSelector::default(), None));
        assert!(selector_matches(
            &LabelSelector::default(),
            Some(&labels(&[("a", "b")]))
        ));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = sel(&[("app", "web"), ("tier", "fe")], vec![]);
        assert!(selector_matches(
            &s,
            Some(&labels(&[("app", "web"), ("tier", "fe"), ("x", "y")]))
        ));
        assert!(!selector_matches(&s, Some(&labels(&[("app", "web")]))));
        assert!(!selector_matches(
            &s,
            Some(&labels(&[("app", "web"), ("tier", "be")]))
        ));
        assert!(!selector_matches(&s, None));
    }

    #[test]
    fn in_needs_the_label_with_one_of_the_values() {
        let s = sel(&[], vec![expr("env", "In", &["prod", "stage"])]);
        assert!(selector_matches(&s, Some(&labels(&[("env", "prod")]))));
        assert!(!selector_matches(&s, Some(&labels(&[("env", "dev")]))));
        assert!(!selector_matches(&s, None));
    }

    #[test]
    fn not_in_matches_a_missing_label_or_another_value() {
        let s = sel(&[], vec![expr("env", "NotIn", &["dev"])]);
        assert!(selector_matches(&s, None));
        assert!(selector_matches(&s, Some(&labels(&[("env", "prod")]))));
        assert!(!selector_matches(&s, Some(&labels(&[("env", "dev")]))));
    }

    #[test]
    fn exists_and_does_not_exist_look_at_the_key_only() {
        let exists = sel(&[], vec![expr("canary", "Exists", &[])]);
        let absent = sel(&[], vec![expr("canary", "DoesNotExist", &[])]);
        let with = labels(&[("canary", "")]);
        assert!(selector_matches(&exists, Some(&with)));
        assert!(!selector_matches(&exists, None));
        assert!(selector_matches(&absent, None));
        assert!(!selector_matches(&absent, Some(&with)));
    }

    #[test]
    fn labels_and_expressions_must_both_hold() {
        let s = sel(&[("app", "web")], vec![expr("env", "In", &["prod"])]);
        assert!(selector_matches(
            &s,
            Some(&labels(&[("app", "web"), ("env", "prod")]))
        ));
        assert!(!selector_matches(
            &s,
            Some(&labels(&[("app", "web"), ("env", "dev")]))
        ));
        assert!(!selector_matches(
            &s,
            Some(&labels(&[("app", "db"), ("env", "prod")]))
        ));
    }

    #[test]
    fn an_unknown_operator_never_matches() {
        let s = sel(&[], vec![expr("env", "Gt", &["1"])]);
        assert!(!selector_matches(&s, Some(&labels(&[("env", "2")]))));
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
        assert_eq!(required_keys(&s), vec!["app", "pod-template-hash", "env"]);
    }
}
