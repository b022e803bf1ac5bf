//! Which pod an alert is about (SPEC §2, "Target extraction").

use std::borrow::Cow;

use teflon_core::{FieldValue, Fields, Target};

/// The value of `key` as non-empty text: strings as they are, integers as digits
/// (a pod named `123` may arrive as a number); `null`, `"<NA>"` and other types are absent.
fn text<'a>(fields: &'a Fields, key: &str) -> Option<Cow<'a, str>> {
    match fields.get(key)? {
        FieldValue::Str(s) if !s.is_empty() => Some(Cow::Borrowed(s.as_str())),
        FieldValue::I64(n) => Some(Cow::Owned(n.to_string())),
        FieldValue::U64(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

fn pair(fields: &Fields, ns: &str, pod: &str) -> Option<(String, String)> {
    Some((
        text(fields, ns)?.into_owned(),
        text(fields, pod)?.into_owned(),
    ))
}

/// The pod target of an alert from `source` with these output fields, in SPEC order:
/// `k8s.ns.name` + `k8s.pod.name`; `k8smeta.ns.name` + `k8smeta.pod.name`; for `k8s_audit`,
/// `ka.target.namespace` + `ka.target.name` when `ka.target.resource` is `pods`.
///
/// The UID comes from `k8s.pod.uid`, `k8s.pod.id` or `k8smeta.pod.uid`; the container id
/// from `container.id`, where `host` means no container.
pub fn extract_target(source: &str, fields: &Fields) -> Option<Target> {
    let (namespace, pod) = pair(fields, "k8s.ns.name", "k8s.pod.name")
        .or_else(|| pair(fields, "k8smeta.ns.name", "k8smeta.pod.name"))
        .or_else(|| {
            let is_pod = source == "k8s_audit"
                && text(fields, "ka.target.resource").is_some_and(|r| r == "pods");
            if is_pod {
                pair(fields, "ka.target.namespace", "ka.target.name")
            } else {
                None
            }
        })?;
    let uid = ["k8s.pod.uid", "k8s.pod.id", "k8smeta.pod.uid"]
        .iter()
        .find_map(|k| text(fields, k))
        .map(Cow::into_owned);
    let container_id = text(fields, "container.id")
        .filter(|c| c != "host")
        .map(Cow::into_owned);
    Some(Target {
        namespace,
        pod,
        uid,
        container_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, FieldValue)]) -> Fields {
        pairs.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    #[test]
    fn k8s_fields_win_over_k8smeta() {
        let f = fields(&[
            ("k8smeta.ns.name", "meta-ns".into()),
            ("k8smeta.pod.name", "meta-pod".into()),
            ("k8s.ns.name", "ns".into()),
            ("k8s.pod.name", "pod".into()),
        ]);
        assert_eq!(
            extract_target("syscall", &f),
            Some(Target::new("ns", "pod"))
        );
    }

    #[test]
    fn k8smeta_is_used_when_k8s_fields_are_absent() {
        let f = fields(&[
            ("k8s.ns.name", "<NA>".into()),
            ("k8s.pod.name", FieldValue::Null),
            ("k8smeta.ns.name", "meta-ns".into()),
            ("k8smeta.pod.name", "meta-pod".into()),
            ("k8smeta.pod.uid", "u-1".into()),
        ]);
        let t = extract_target("syscall", &f).unwrap();
        assert_eq!(
            (t.namespace.as_str(), t.pod.as_str()),
            ("meta-ns", "meta-pod")
        );
        assert_eq!(t.uid.as_deref(), Some("u-1"));
    }

    #[test]
    fn a_pod_name_without_namespace_is_no_target() {
        let f = fields(&[("k8s.pod.name", "falco-6htpw".into())]);
        assert_eq!(extract_target("syscall", &f), None);
    }

    #[test]
    fn audit_targets_count_only_for_pods_and_only_for_k8s_audit() {
        let mut f = fields(&[
            ("ka.target.namespace", "default".into()),
            ("ka.target.name", "web".into()),
            ("ka.target.resource", "pods".into()),
        ]);
        assert_eq!(
            extract_target("k8s_audit", &f),
            Some(Target::new("default", "web"))
        );
        assert_eq!(extract_target("syscall", &f), None);
        f.insert("ka.target.resource", "serviceaccounts");
        assert_eq!(extract_target("k8s_audit", &f), None);
    }

    #[test]
    fn host_container_means_no_container_id() {
        let f = fields(&[
            ("k8s.ns.name", "ns".into()),
            ("k8s.pod.name", "pod".into()),
            ("container.id", "host".into()),
            ("k8s.pod.id", "uid-9".into()),
        ]);
        let t = extract_target("syscall", &f).unwrap();
        assert_eq!(t.container_id, None);
        assert_eq!(t.uid.as_deref(), Some("uid-9"));
    }

    #[test]
    fn numeric_names_are_read_as_text() {
        let f = fields(&[
            ("k8s.ns.name", "ns".into()),
            ("k8s.pod.name", FieldValue::I64(123)),
        ]);
        assert_eq!(
            extract_target("syscall", &f),
            Some(Target::new("ns", "123"))
        );
    }
}
