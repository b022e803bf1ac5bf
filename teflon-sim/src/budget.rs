//! `IntOrString` budgets (`minAvailable` / `maxUnavailable`), as the API server evaluates them.
//! Label selectors are `teflon_core::selector`.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

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

    #[test]
    fn percentages_and_integers_parse() {
        assert_eq!(IntOrPercent::parse("50%"), Some(IntOrPercent::Percent(50)));
        assert_eq!(IntOrPercent::parse("2"), Some(IntOrPercent::Int(2)));
        assert_eq!(IntOrPercent::parse("many"), None);
    }
}
