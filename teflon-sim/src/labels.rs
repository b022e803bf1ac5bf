//! Label selectors and `IntOrString` budgets, as the API server evaluates them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// One `matchExpressions` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
    /// An operator Kubernetes does not know: matches nothing (as the API server would reject it).
    Invalid,
}

/// A compiled `LabelSelector`. `None` inside means a null selector, which selects nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Selector {
    labels: BTreeMap<String, String>,
    expressions: Vec<Requirement>,
    selects_nothing: bool,
}

impl Selector {
    /// A selector that matches nothing (a null selector).
    pub(crate) fn nothing() -> Self {
        Selector {
            selects_nothing: true,
            ..Selector::default()
        }
    }

    /// `matchLabels` only.
    pub(crate) fn match_labels<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Selector {
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..Selector::default()
        }
    }

    /// From the API type; `None` (null) selects nothing, `{}` selects everything.
    pub(crate) fn from_api(selector: Option<&LabelSelector>) -> Self {
        let Some(sel) = selector else {
            return Selector::nothing();
        };
        let labels = sel.match_labels.clone().unwrap_or_default();
        let expressions = sel
            .match_expressions
            .iter()
            .flatten()
            .map(|e| {
                let values = e.values.clone().unwrap_or_default();
                match e.operator.as_str() {
                    "In" => Requirement::In(e.key.clone(), values),
                    "NotIn" => Requirement::NotIn(e.key.clone(), values),
                    "Exists" => Requirement::Exists(e.key.clone()),
                    "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
                    _ => Requirement::Invalid,
                }
            })
            .collect();
        Selector {
            labels: labels.into_iter().collect(),
            expressions,
            selects_nothing: false,
        }
    }

    /// The label keys this selector constrains.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.labels
            .keys()
            .map(String::as_str)
            .chain(self.expressions.iter().filter_map(|r| match r {
                Requirement::In(k, _)
                | Requirement::NotIn(k, _)
                | Requirement::Exists(k)
                | Requirement::DoesNotExist(k) => Some(k.as_str()),
                Requirement::Invalid => None,
            }))
    }

    /// True when `labels` satisfy every requirement.
    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        if self.selects_nothing {
            return false;
        }
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.expressions.iter().all(|r| match r {
                Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
                Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
                Requirement::Exists(k) => labels.contains_key(k),
                Requirement::DoesNotExist(k) => !labels.contains_key(k),
                Requirement::Invalid => false,
            })
    }
}

/// `minAvailable` / `maxUnavailable`: a pod count or a percentage (rounded up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntOrPercent {
    Int(i32),
    Percent(u32),
}

impl IntOrPercent {
    /// `3` or `"50%"`; anything else is `None`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        match s.strip_suffix('%') {
            Some(p) => p.trim().parse().ok().map(IntOrPercent::Percent),
            None => s.parse().ok().map(IntOrPercent::Int),
        }
    }

    pub(crate) fn from_api(v: Option<&IntOrString>) -> Option<Self> {
        match v? {
            IntOrString::Int(n) => Some(IntOrPercent::Int(*n)),
            IntOrString::String(s) => IntOrPercent::parse(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = Selector::match_labels([("app", "web"), ("tier", "front")]);
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "front"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
    }

    #[test]
    fn a_null_selector_selects_nothing_and_an_empty_one_everything() {
        assert!(!Selector::from_api(None).matches(&labels(&[("app", "web")])));
        assert!(Selector::from_api(Some(&LabelSelector::default())).matches(&labels(&[])));
    }

    #[test]
    fn percentages_and_integers_parse() {
        assert_eq!(IntOrPercent::parse("50%"), Some(IntOrPercent::Percent(50)));
        assert_eq!(IntOrPercent::parse("2"), Some(IntOrPercent::Int(2)));
        assert_eq!(IntOrPercent::parse("many"), None);
    }
}
