//! Kubernetes quantities in canonical decimal-SI form, as `resource.Quantity` writes them.

use std::fmt::Write as _;

/// A value as a Kubernetes quantity in canonical decimal-SI form, rounded to the nearest
/// milli-unit: `3` → `"3"`, `1.5` → `"1500m"`, `0.0004` → `"0"`, `2000` → `"2k"`.
///
/// Not-a-number counts as 0; infinities and values beyond the range of `i64` milli-units are
/// clamped (the HPA only needs to see "very large").
pub fn format_quantity(value: f64) -> String {
    let milli = if value.is_nan() {
        0
    } else {
        // `as` saturates for out-of-range floats, which is the clamp we want.
        (value * 1000.0).round() as i64
    };
    format_milli_quantity(milli)
}

/// A quantity of `milli` thousandths, in canonical decimal-SI form.
pub fn format_milli_quantity(milli: i64) -> String {
    if milli == 0 {
        return "0".to_owned();
    }
    let negative = milli < 0;
    let mut mantissa = milli.unsigned_abs();
    // Exponents of 10³ from milli (index 0) upward, as resource.Quantity canonicalizes.
    const SUFFIXES: [&str; 8] = ["m", "", "k", "M", "G", "T", "P", "E"];
    let mut exp = 0;
    while exp + 1 < SUFFIXES.len() && mantissa.is_multiple_of(1000) {
        mantissa /= 1000;
        exp += 1;
    }
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    let _ = write!(out, "{mantissa}{}", SUFFIXES[exp]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_plain_and_fractions_are_milli_units() {
        assert_eq!(format_quantity(0.0), "0");
        assert_eq!(format_quantity(3.0), "3");
        assert_eq!(format_quantity(1.5), "1500m");
        assert_eq!(format_quantity(0.9), "900m");
        assert_eq!(format_quantity(0.0004), "0");
        assert_eq!(format_quantity(0.0006), "1m");
        assert_eq!(format_quantity(2.0 / 3.0), "667m");
        assert_eq!(format_quantity(-1.25), "-1250m");
    }

    #[test]
    fn quantities_take_the_canonical_decimal_si_suffix() {
        assert_eq!(format_quantity(1000.0), "1k");
        assert_eq!(format_quantity(1500.0), "1500");
        assert_eq!(format_quantity(2_000_000.0), "2M");
        assert_eq!(format_milli_quantity(1), "1m");
        assert_eq!(format_milli_quantity(1_000), "1");
    }

    #[test]
    fn non_finite_values_do_not_panic() {
        assert_eq!(format_quantity(f64::NAN), "0");
        assert!(!format_quantity(f64::INFINITY).is_empty());
        assert!(format_quantity(f64::NEG_INFINITY).starts_with('-'));
        assert!(!format_milli_quantity(i64::MIN).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn quantities_round_trip_to_the_nearest_milli(milli in -10_000_000i64..10_000_000) {
            let q = format_milli_quantity(milli);
            let back = if let Some(m) = q.strip_suffix('m') {
                m.parse::<i64>().unwrap()
            } else if let Some(k) = q.strip_suffix('k') {
                k.parse::<i64>().unwrap() * 1_000_000
            } else if let Some(mega) = q.strip_suffix('M') {
                mega.parse::<i64>().unwrap() * 1_000_000_000
            } else {
                q.parse::<i64>().unwrap() * 1000
            };
            proptest::prop_assert_eq!(back, milli);
        }
    }
}
