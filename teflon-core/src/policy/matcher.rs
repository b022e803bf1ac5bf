//! Compiled match conditions. Nothing here parses strings at decision time.
//!
//! Size: about 430 lines before its tests, kept in one file: every compiled match condition (globs,
//! priorities, literals, field conditions, tags) beside the interner they all use.

use std::collections::HashMap;
use std::fmt;

use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

use crate::alert::{Alert, FieldValue, Priority};

/// Build one glob the way every policy glob is built: `*`, `?`, `[…]`, `{a,b}`, `\` escapes;
/// `*` crosses `/` (namespaces and rule names have no path structure).
pub(crate) fn build_glob(pattern: &str) -> Result<Glob, String> {
    if pattern.is_empty() {
        return Err("empty glob (use \"*\" to match everything)".to_owned());
    }
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("invalid glob {pattern:?}: {}", glob_error_kind(&e)))
}

fn glob_error_kind(e: &globset::Error) -> String {
    // globset's Display repeats the pattern; keep only the kind.
    e.kind().to_string()
}

/// True when `s` uses glob syntax; plain names go through the exact-match hash index.
pub(crate) fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

/// A compiled list of globs matched as "any".
#[derive(Clone)]
pub struct GlobList {
    patterns: Vec<String>,
    set: GlobSet,
}

impl fmt::Debug for GlobList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.patterns).finish()
    }
}

impl GlobList {
    /// Compile `patterns`; the error names the first bad one.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, String> {
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            builder.add(build_glob(p.as_ref())?);
        }
        let set = builder.build().map_err(|e| e.to_string())?;
        Ok(GlobList {
            patterns: patterns.iter().map(|p| p.as_ref().to_owned()).collect(),
            set,
        })
    }

    /// An empty list (matches nothing).
    pub fn empty() -> Self {
        GlobList {
            patterns: Vec::new(),
            set: GlobSet::empty(),
        }
    }

    /// True when any pattern matches.
    pub fn is_match(&self, s: &str) -> bool {
        self.set.is_match(s)
    }

    /// The patterns as written.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// A comparison on priorities: `>=Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriorityCmp {
    /// `<`
    Lt(Priority),
    /// `<=`
    Le(Priority),
    /// `>`
    Gt(Priority),
    /// `>=`
    Ge(Priority),
    /// `=` or a bare name
    Eq(Priority),
}

impl PriorityCmp {
    /// Parse `[<|<=|>|>=|=]Name`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (ctor, rest): (fn(Priority) -> PriorityCmp, &str) =
            if let Some(r) = s.strip_prefix(">=") {
                (PriorityCmp::Ge, r)
            } else if let Some(r) = s.strip_prefix("<=") {
                (PriorityCmp::Le, r)
            } else if let Some(r) = s.strip_prefix('>') {
                (PriorityCmp::Gt, r)
            } else if let Some(r) = s.strip_prefix('<') {
                (PriorityCmp::Lt, r)
            } else if let Some(r) = s.strip_prefix('=') {
                (PriorityCmp::Eq, r.strip_prefix('=').unwrap_or(r))
            } else {
                (PriorityCmp::Eq, s)
            };
        let p: Priority = rest
            .trim()
            .parse()
            .map_err(|e: crate::alert::PriorityError| e.to_string())?;
        Ok(ctor(p))
    }

    /// Does `p` satisfy the comparison?
    pub fn holds(self, p: Priority) -> bool {
        match self {
            PriorityCmp::Lt(x) => p < x,
            PriorityCmp::Le(x) => p <= x,
            PriorityCmp::Gt(x) => p > x,
            PriorityCmp::Ge(x) => p >= x,
            PriorityCmp::Eq(x) => p == x,
        }
    }
}

impl fmt::Display for PriorityCmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (op, p) = match self {
            PriorityCmp::Lt(p) => ("<", p),
            PriorityCmp::Le(p) => ("<=", p),
            PriorityCmp::Gt(p) => (">", p),
            PriorityCmp::Ge(p) => (">=", p),
            PriorityCmp::Eq(p) => ("=", p),
        };
        write!(f, "{op}{p}")
    }
}

/// A field literal, pre-parsed into every type a field value may arrive as, so that
/// "compared as strings" needs no formatting or parsing per alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    text: String,
    int: Option<i128>,
    float: Option<f64>,
    boolean: Option<bool>,
}

impl Literal {
    /// A literal from its text form.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let int = text.parse::<i128>().ok();
        let float = if int.is_none() {
            text.parse::<f64>().ok().filter(|x| x.is_finite())
        } else {
            None
        };
        let boolean = match text.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        Literal {
            text,
            int,
            float,
            boolean,
        }
    }

    /// The literal as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Equal when compared as strings (numbers by value, so `4444` equals `"4444"`).
    pub fn matches(&self, v: &FieldValue) -> bool {
        match v {
            FieldValue::Str(s) => *s == self.text,
            FieldValue::I64(n) => self.int == Some(i128::from(*n)),
            FieldValue::U64(n) => self.int == Some(i128::from(*n)),
            FieldValue::F64(x) => {
                self.float == Some(*x)
                    || (x.fract() == 0.0 && self.int.is_some_and(|i| i as f64 == *x))
            }
            FieldValue::Bool(b) => self.boolean == Some(*b),
            FieldValue::List(items) => items.iter().any(|i| self.matches(i)),
            FieldValue::Null => false,
        }
    }
}

/// A condition on one output field.
#[derive(Debug, Clone)]
pub enum FieldCond {
    /// Present and equal to any of these.
    AnyOf(Vec<Literal>),
    /// Absent, or equal to none of these.
    NoneOf(Vec<Literal>),
    /// Present and its text matches the glob.
    Glob(String, GlobMatcher),
    /// `exists: true` — present and not null / `"<NA>"`; `exists: false` — the opposite.
    Exists(bool),
}

impl FieldCond {
    /// Does the alert's field value satisfy the condition?
    pub fn holds(&self, value: Option<&FieldValue>) -> bool {
        match (self, value) {
            (FieldCond::Exists(want), v) => v.is_some() == *want,
            (FieldCond::AnyOf(lits), Some(v)) => lits.iter().any(|l| l.matches(v)),
            (FieldCond::AnyOf(_), None) => false,
            (FieldCond::NoneOf(lits), Some(v)) => !lits.iter().any(|l| l.matches(v)),
            (FieldCond::NoneOf(_), None) => true,
            (FieldCond::Glob(_, g), Some(FieldValue::Str(s))) => g.is_match(s),
            (FieldCond::Glob(_, g), Some(FieldValue::List(items))) => {
                items.iter().any(|i| g.is_match(i.to_text()))
            }
            (FieldCond::Glob(_, g), Some(v)) => g.is_match(v.to_text()),
            (FieldCond::Glob(..), None) => false,
        }
    }
}

/// Tag names interned to small ids, so tag conditions are bit tests.
#[derive(Debug, Clone, Default)]
pub struct TagInterner {
    ids: HashMap<String, u32>,
}

impl TagInterner {
    /// The id of `tag`, allocating one.
    pub fn intern(&mut self, tag: &str) -> u32 {
        if let Some(&id) = self.ids.get(tag) {
            return id;
        }
        let id = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        self.ids.insert(tag.to_owned(), id);
        id
    }

    /// The set of known tags an alert carries (unknown tags concern no policy).
    pub fn tag_set(&self, tags: &[String]) -> TagSet {
        let mut set = TagSet::default();
        if self.ids.is_empty() {
            return set;
        }
        for t in tags {
            if let Some(&id) = self.ids.get(t.as_str()) {
                set.insert(id);
            }
        }
        set
    }
}

/// A small bit set of interned tag ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagSet {
    words: Vec<u64>,
}

impl TagSet {
    fn insert(&mut self, id: u32) {
        let w = (id / 64) as usize;
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << (id % 64);
    }

    /// True when `id` is in the set.
    pub fn contains(&self, id: u32) -> bool {
        let w = (id / 64) as usize;
        self.words
            .get(w)
            .is_some_and(|bits| bits & (1 << (id % 64)) != 0)
    }
}

/// Everything of `match:` except `rules` (those live in the [`RuleIndex`]).
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    pub(crate) priority: Option<PriorityCmp>,
    pub(crate) sources: Vec<String>,
    pub(crate) tags_all: Vec<u32>,
    pub(crate) tags_any: Vec<u32>,
    pub(crate) tags_none: Vec<u32>,
    pub(crate) namespaces: Option<GlobList>,
    pub(crate) exclude_namespaces: Option<GlobList>,
    pub(crate) fields: Vec<(String, FieldCond)>,
}

impl Matcher {
    /// Do all conditions hold for `alert` (whose tags are `tags`)?
    pub fn matches(&self, alert: &Alert, tags: &TagSet) -> bool {
        if let Some(cmp) = self.priority
            && !cmp.holds(alert.priority)
        {
            return false;
        }
        if !self.sources.is_empty() && !self.sources.contains(&alert.source) {
            return false;
        }
        if !self.tags_all.iter().all(|&t| tags.contains(t)) {
            return false;
        }
        if !self.tags_any.is_empty() && !self.tags_any.iter().any(|&t| tags.contains(t)) {
            return false;
        }
        if self.tags_none.iter().any(|&t| tags.contains(t)) {
            return false;
        }
        let ns = alert.target.as_ref().map(|t| t.namespace.as_str());
        if let Some(globs) = &self.namespaces {
            match ns {
                Some(ns) if globs.is_match(ns) => {}
                _ => return false,
            }
        }
        if let (Some(globs), Some(ns)) = (&self.exclude_namespaces, ns)
            && globs.is_match(ns)
        {
            return false;
        }
        self.fields
            .iter()
            .all(|(key, cond)| cond.holds(alert.fields.get(key)))
    }
}

/// Finds the policies whose `rules` can match a rule name: exact names through a hash map,
/// globs through one compiled set, plus the policies with no `rules` at all.
#[derive(Debug, Clone)]
pub struct RuleIndex {
    exact: HashMap<String, Vec<u32>>,
    globs: GlobSet,
    glob_owner: Vec<u32>,
    any_rule: Vec<u32>,
}

impl Default for RuleIndex {
    fn default() -> Self {
        RuleIndex {
            exact: HashMap::new(),
            globs: GlobSet::empty(),
            glob_owner: Vec::new(),
            any_rule: Vec::new(),
        }
    }
}

/// Builds a [`RuleIndex`].
#[derive(Debug)]
pub struct RuleIndexBuilder {
    exact: HashMap<String, Vec<u32>>,
    globs: GlobSetBuilder,
    glob_owner: Vec<u32>,
    any_rule: Vec<u32>,
}

impl Default for RuleIndexBuilder {
    fn default() -> Self {
        RuleIndexBuilder {
            exact: HashMap::new(),
            globs: GlobSetBuilder::new(),
            glob_owner: Vec::new(),
            any_rule: Vec::new(),
        }
    }
}

impl RuleIndexBuilder {
    /// Policy `idx` matches any rule.
    pub fn any(&mut self, idx: u32) {
        self.any_rule.push(idx);
    }

    /// Policy `idx` matches rule `pattern` (a name or a glob).
    pub fn add(&mut self, idx: u32, pattern: &str) -> Result<(), String> {
        if is_glob(pattern) {
            self.globs.add(build_glob(pattern)?);
            self.glob_owner.push(idx);
        } else if pattern.is_empty() {
            return Err("empty rule name".to_owned());
        } else {
            let owners = self.exact.entry(pattern.to_owned()).or_default();
            if owners.last() != Some(&idx) {
                owners.push(idx);
            }
        }
        Ok(())
    }

    /// The index.
    pub fn build(self) -> Result<RuleIndex, String> {
        Ok(RuleIndex {
            exact: self.exact,
            globs: self.globs.build().map_err(|e| e.to_string())?,
            glob_owner: self.glob_owner,
            any_rule: self.any_rule,
        })
    }
}

impl RuleIndex {
    /// Indices of the policies whose `rules` match `rule`, ascending, without repeats.
    pub fn candidates(&self, rule: &str) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        if let Some(owners) = self.exact.get(rule) {
            out.extend_from_slice(owners);
        }
        if !self.glob_owner.is_empty() {
            for i in self.globs.matches(rule) {
                out.push(self.glob_owner[i]);
            }
        }
        out.extend_from_slice(&self.any_rule);
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_literal_equals_number_and_string_forms() {
        let l = Literal::new("4444");
        assert!(l.matches(&FieldValue::I64(4444)));
        assert!(l.matches(&FieldValue::U64(4444)));
        assert!(l.matches(&FieldValue::Str("4444".into())));
        assert!(!l.matches(&FieldValue::Str("04444".into())));
        assert!(!l.matches(&FieldValue::I64(4445)));
    }

    #[test]
    fn huge_unsigned_literal_matches_u64_field() {
        let l = Literal::new("18446744073709551615");
        assert!(l.matches(&FieldValue::U64(u64::MAX)));
    }

    #[test]
    fn list_field_equals_when_any_element_does() {
        let l = Literal::new("bash");
        let v = FieldValue::List(vec!["sh".into(), "bash".into()]);
        assert!(l.matches(&v));
    }

    #[test]
    fn priority_comparisons_follow_severity() {
        let ge = PriorityCmp::parse(">=Warning").unwrap();
        assert!(ge.holds(Priority::Critical));
        assert!(ge.holds(Priority::Warning));
        assert!(!ge.holds(Priority::Notice));
        assert_eq!(
            PriorityCmp::parse("critical").unwrap(),
            PriorityCmp::Eq(Priority::Critical)
        );
        assert_eq!(
            PriorityCmp::parse("<Error").unwrap(),
            PriorityCmp::Lt(Priority::Error)
        );
        assert!(PriorityCmp::parse(">=Critcal").is_err());
    }

    #[test]
    fn rule_index_returns_exact_glob_and_catch_all_policies_in_order() {
        let mut b = RuleIndexBuilder::default();
        b.add(0, "Terminal shell in container").unwrap();
        b.add(1, "Drop and execute*").unwrap();
        b.any(2);
        b.add(3, "Terminal*").unwrap();
        let idx = b.build().unwrap();
        assert_eq!(idx.candidates("Terminal shell in container"), vec![0, 2, 3]);
        assert_eq!(
            idx.candidates("Drop and execute new binary in container"),
            vec![1, 2]
        );
        assert_eq!(idx.candidates("Other"), vec![2]);
    }

    #[test]
    fn bad_glob_is_reported() {
        assert!(build_glob("[unclosed").is_err());
        assert!(build_glob("").is_err());
    }
}
