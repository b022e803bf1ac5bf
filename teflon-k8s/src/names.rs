//! Names Teflon gives the objects it creates: DNS-safe, bounded, stable across restarts.

/// FNV-1a, 64 bit: a hash that never changes between Rust releases, so a name derived
/// today is the same name tomorrow (idempotence by name depends on it).
pub(crate) fn fnv1a64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // A separator that cannot appear in Kubernetes names keeps ("ab","c") ≠ ("a","bc").
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Lowercase `[a-z0-9-]`, runs of anything else collapsed to one `-`, trimmed of `-`,
/// at most `max` characters.
pub(crate) fn dns_label_part(input: &str, max: usize) -> String {
    let mut out = String::with_capacity(input.len().min(max));
    let mut dash = false;
    for c in input.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
            dash = false;
        } else if !dash && !out.is_empty() {
            out.push('-');
            dash = true;
        }
        if out.len() >= max {
            break;
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// Kubernetes object names (DNS-1123 labels) are at most 63 characters.
const MAX_NAME: usize = 63;

/// `prefix` + `readable`, or, when that would be too long, a shortened readable part plus
/// a hash of the full input so that distinct inputs keep distinct names.
pub(crate) fn bounded_name(prefix: &str, readable: &str) -> String {
    let full = format!("{prefix}{}", dns_label_part(readable, usize::MAX));
    if full.len() <= MAX_NAME && !full.ends_with('-') {
        return full;
    }
    let hash = format!("{:016x}", fnv1a64(&[readable]));
    let room = MAX_NAME.saturating_sub(prefix.len() + 1 + hash.len());
    let short = dns_label_part(readable, room);
    if short.is_empty() {
        format!("{prefix}{hash}")
    } else {
        format!("{prefix}{short}-{hash}")
    }
}

/// A label value (≤ 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends) that
/// stands for `name`: the name itself when it is one, else a hash of it.
pub(crate) fn label_value_for(name: &str) -> String {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        name.to_owned()
    } else {
        format!("h{:016x}", fnv1a64(&[name]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_readable() {
        assert_eq!(
            bounded_name("teflon-quarantine-", "web-7d9f-abc"),
            "teflon-quarantine-web-7d9f-abc"
        );
    }

    #[test]
    fn long_names_are_shortened_to_63_characters_with_a_hash() {
        let long = "a".repeat(200);
        let name = bounded_name("teflon-quarantine-", &long);
        assert_eq!(name.len(), 63);
        assert!(name.starts_with("teflon-quarantine-aaa"));
        assert_ne!(name, bounded_name("teflon-quarantine-", &"a".repeat(201)));
    }

    #[test]
    fn unsafe_characters_become_single_dashes() {
        assert_eq!(dns_label_part("/usr/bin/Netcat..x", 63), "usr-bin-netcat-x");
    }

    #[test]
    fn the_hash_is_stable_and_separates_parts() {
        assert_eq!(fnv1a64(&[""]), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a64(&["ab", "c"]), fnv1a64(&["a", "bc"]));
    }

    #[test]
    fn pod_names_that_are_not_label_values_are_hashed() {
        assert_eq!(label_value_for("web-1"), "web-1");
        let long = "x".repeat(64);
        let v = label_value_for(&long);
        assert!(v.len() <= 63 && v.starts_with('h'));
    }
}
