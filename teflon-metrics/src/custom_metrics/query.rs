//! The query string of a request (`labelSelector`, `metricLabelSelector`).

/// Decode `%XX` escapes (and `+` as a space when `plus_is_space`); invalid escapes stay as
/// they are, invalid UTF-8 is replaced.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query parameters this API reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricQuery {
    /// `labelSelector`: which objects (for `*` requests).
    pub label_selector: Option<String>,
    /// `metricLabelSelector`: which series of the metric (echoed in `metric.selector`).
    pub metric_label_selector: Option<String>,
}

impl MetricQuery {
    /// Read a raw query string (`labelSelector=app%3Dweb&…`).
    pub fn parse(query: &str) -> Self {
        let mut q = MetricQuery::default();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match percent_decode(k, true).as_str() {
                "labelSelector" => q.label_selector = Some(percent_decode(v, true)),
                "metricLabelSelector" => q.metric_label_selector = Some(percent_decode(v, true)),
                _ => {}
            }
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_and_plus_signs_are_decoded_in_queries() {
        let q = MetricQuery::parse("labelSelector=app%3Dfrontend%2Ctier+in+%28a%29&x=1");
        assert_eq!(
            q.label_selector.as_deref(),
            Some("app=frontend,tier in (a)")
        );
        assert_eq!(percent_decode("%2A", false), "*");
        assert_eq!(percent_decode("%", false), "%");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("%ff", false), "\u{fffd}");
    }

    proptest::proptest! {
        #[test]
        fn percent_decoding_never_panics(input in "[%0-9a-fA-F+zZ\\PC]{0,32}") {
            let _ = percent_decode(&input, true);
        }
    }
}
