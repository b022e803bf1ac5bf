//! Label selectors, evaluated the way the API server does (`k8s.io/apimachinery/pkg/labels`).
//!
//! One [`Selector`] for the whole project: which PodDisruptionBudget guards a pod, which
//! labels quarantine strips, which objects a custom-metrics list request wants. It comes from
//! the string form (`a=b,c!=d,e in (x,y),f notin (z),g,!h`, [`Selector::parse`]) or from the
//! structured `metav1.LabelSelector` ([`Selector::from_structured`]; with the `k8s-openapi`
//! feature, [`Selector::from_api`]), and both follow `labels.Parse` and
//! `metav1.LabelSelectorAsSelector`:
//!
//! - `=`, `==`, `in` need the label with one of the values; `!=`, `notin` also hold when the
//!   label is missing; `>` / `<` need an integer label value;
//! - the empty selector selects everything, a null one (or one Kubernetes would refuse to
//!   convert: unknown operator, `In` without values, `Exists` with values, invalid key or
//!   value) selects nothing, as the eviction API and the disruption controller skip it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod parse;
mod requirement;

pub use parse::SelectorError;
pub use requirement::{Requirement, SelectorOp};

/// A compiled label selector: every requirement must hold.
///
/// The empty selector selects everything; [`Selector::nothing`] (a null selector) selects
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
    selects_nothing: bool,
}

impl Selector {
    /// The selector that selects everything (`{}`, or the empty string).
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that selects nothing (a null `metav1.LabelSelector`).
    pub fn nothing() -> Self {
        Selector {
            requirements: Vec::new(),
            selects_nothing: true,
        }
    }

    /// `matchLabels` only (keys and values are taken as given).
    pub fn match_labels<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Selector {
            requirements: labels
                .into_iter()
                .map(|(k, v)| Requirement {
                    key: k.to_owned(),
                    op: SelectorOp::Equals,
                    values: vec![v.to_owned()],
                })
                .collect(),
            selects_nothing: false,
        }
    }

    /// Parse the string form (`labelSelector=` of a list request), as `labels.Parse` does.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        parse::parse(input).map(|requirements| Selector {
            requirements,
            selects_nothing: false,
        })
    }

    /// The structured form, as `metav1.LabelSelectorAsSelector` converts it: `matchLabels`
    /// first (in key order), then `matchExpressions`. An error is what the API server would
    /// refuse; callers that evaluate stored objects treat it as [`Selector::nothing`].
    pub fn from_structured(selector: &StructuredSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in &selector.match_labels {
            parse::validate_key(key)?;
            parse::validate_value(value)?;
            requirements.push(Requirement {
                key: key.clone(),
                op: SelectorOp::Equals,
                values: vec![value.clone()],
            });
        }
        for e in &selector.match_expressions {
            requirements.push(expression(&e.key, &e.operator, &e.values)?);
        }
        Ok(Selector {
            requirements,
            selects_nothing: false,
        })
    }

    /// The requirements, in input order.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True for the selector that selects everything.
    pub fn is_empty(&self) -> bool {
        !self.selects_nothing && self.requirements.is_empty()
    }

    /// True for the selector that selects nothing.
    pub fn selects_nothing(&self) -> bool {
        self.selects_nothing
    }

    /// True when `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_by(|k| labels.get(k).map(String::as_str))
    }

    /// [`Selector::matches`] over any label store: `get` looks a label's value up by key.
    pub fn matches_by<'a>(&self, get: impl Fn(&str) -> Option<&'a str> + Copy) -> bool {
        !self.selects_nothing && self.requirements.iter().all(|r| r.matches_by(get))
    }

    /// Every label key this selector constrains (once each, in order).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.requirements
            .iter()
            .enumerate()
            .filter(|(i, r)| !self.requirements[..*i].iter().any(|p| p.key == r.key))
            .map(|(_, r)| r.key.as_str())
    }

    /// The label keys a pod must carry to be selected: the keys of `=`, `in`, `>`, `<` and
    /// existence requirements. Removing any one of them takes the pod out.
    pub fn required_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for r in &self.requirements {
            let required = matches!(
                r.op,
                SelectorOp::Equals
                    | SelectorOp::In
                    | SelectorOp::Exists
                    | SelectorOp::GreaterThan
                    | SelectorOp::LessThan
            );
            if required && !keys.contains(&r.key) {
                keys.push(r.key.clone());
            }
        }
        keys
    }

    /// The structured `metav1.LabelSelector` form (`matchLabels` + `matchExpressions`);
    /// `!=` becomes `NotIn`. `>` and `<` have no structured form and are left out.
    pub fn to_structured(&self) -> StructuredSelector {
        let mut out = StructuredSelector::default();
        for r in &self.requirements {
            let (operator, values) = match r.op {
                SelectorOp::Equals => {
                    let v = r.values.first().cloned().unwrap_or_default();
                    out.match_labels.insert(r.key.clone(), v);
                    continue;
                }
                SelectorOp::NotEquals | SelectorOp::NotIn => ("NotIn", r.values.clone()),
                SelectorOp::In => ("In", r.values.clone()),
                SelectorOp::Exists => ("Exists", Vec::new()),
                SelectorOp::DoesNotExist => ("DoesNotExist", Vec::new()),
                SelectorOp::GreaterThan | SelectorOp::LessThan => continue,
            };
            out.match_expressions.push(SelectorExpression {
                key: r.key.clone(),
                operator: operator.to_owned(),
                values,
            });
        }
        out
    }
}

/// One `matchExpressions` entry, checked as `metav1.LabelSelectorAsSelector` checks it.
fn expression(key: &str, operator: &str, values: &[String]) -> Result<Requirement, SelectorError> {
    let op = match operator {
        "In" => SelectorOp::In,
        "NotIn" => SelectorOp::NotIn,
        "Exists" => SelectorOp::Exists,
        "DoesNotExist" => SelectorOp::DoesNotExist,
        other => {
            return Err(SelectorError::InvalidOperator(
                other.chars().take(64).collect(),
            ));
        }
    };
    parse::validate_key(key)?;
    let wants_values = matches!(op, SelectorOp::In | SelectorOp::NotIn);
    if wants_values == values.is_empty() {
        return Err(SelectorError::Values {
            key: key.chars().take(300).collect(),
            operator: operator.to_owned(),
        });
    }
    for v in values {
        parse::validate_value(v)?;
    }
    Ok(Requirement {
        key: key.to_owned(),
        op,
        values: values.to_vec(),
    })
}

/// `metav1.LabelSelector` as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StructuredSelector {
    /// Equality requirements.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<SelectorExpression>,
}

/// `metav1.LabelSelectorRequirement` as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorExpression {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In` / `NotIn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[cfg(feature = "k8s-openapi")]
mod api {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    use super::{Selector, SelectorError, StructuredSelector};

    impl Selector {
        /// From the API type, as the eviction API evaluates a PodDisruptionBudget's selector:
        /// `None` (null) selects nothing, `{}` everything, and a selector Kubernetes would
        /// refuse to convert selects nothing.
        pub fn from_api(selector: Option<&LabelSelector>) -> Self {
            selector
                .and_then(|s| Self::try_from_api(s).ok())
                .unwrap_or_else(Selector::nothing)
        }

        /// From the API type, or why Kubernetes would refuse it.
        pub fn try_from_api(selector: &LabelSelector) -> Result<Self, SelectorError> {
            Self::from_structured(&StructuredSelector::from(selector))
        }
    }

    impl From<&LabelSelector> for StructuredSelector {
        fn from(s: &LabelSelector) -> Self {
            StructuredSelector {
                match_labels: s.match_labels.clone().unwrap_or_default(),
                match_expressions: s
                    .match_expressions
                    .iter()
                    .flatten()
                    .map(|e| super::SelectorExpression {
                        key: e.key.clone(),
                        operator: e.operator.clone(),
                        values: e.values.clone().unwrap_or_default(),
                    })
                    .collect(),
            }
        }
    }
}

#[cfg(test)]
mod tests;
