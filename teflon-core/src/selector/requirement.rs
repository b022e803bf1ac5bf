//! One requirement of a selector and how it matches, as `labels.Requirement.Matches` does.

use std::collections::BTreeMap;

/// How a requirement compares a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorOp {
    /// `key=value` or `key==value` (`matchLabels`).
    Equals,
    /// `key!=value` (also true when the key is absent).
    NotEquals,
    /// `key in (a,b)`.
    In,
    /// `key notin (a,b)` (also true when the key is absent).
    NotIn,
    /// `key`.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `key>n` (integer label values).
    GreaterThan,
    /// `key<n` (integer label values).
    LessThan,
}

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The comparison.
    pub op: SelectorOp,
    /// The values compared with (one for `=`, `!=`, `>`, `<`; a set for `in`, `notin`).
    pub values: Vec<String>,
}

impl Requirement {
    /// True when `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_by(|k| labels.get(k).map(String::as_str))
    }

    /// [`Requirement::matches`] over any label store: `get` looks a label's value up by key.
    pub fn matches_by<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        let got = get(&self.key);
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.op {
            SelectorOp::Equals | SelectorOp::In => got.is_some_and(has),
            SelectorOp::NotEquals | SelectorOp::NotIn => got.is_none_or(|v| !has(v)),
            SelectorOp::Exists => got.is_some(),
            SelectorOp::DoesNotExist => got.is_none(),
            SelectorOp::GreaterThan | SelectorOp::LessThan => {
                let (Some(got), Some(bound)) = (
                    got.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == SelectorOp::GreaterThan {
                    got > bound
                } else {
                    got < bound
                }
            }
        }
    }
}
