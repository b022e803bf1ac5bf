//! A fast path for the one time spelling Falco, falcosidekick and Tetragon actually send.

use teflon_core::Timestamp;
use teflon_core::time::TimestampError;

/// Parse RFC 3339 time. `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` is read here without allocating;
/// every other spelling (offsets, lowercase, leap seconds, errors) goes to
/// [`Timestamp::parse_rfc3339`], so the result is always the same as core's.
pub fn parse_time(input: &str) -> Result<Timestamp, TimestampError> {
    match fast(input.as_bytes()) {
        Some(t) => Ok(t),
        None => Timestamp::parse_rfc3339(input),
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    let mut n: i64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(c - b'0');
    }
    Some(n)
}

fn fast(b: &[u8]) -> Option<Timestamp> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b.last() != Some(&b'Z')
    {
        return None;
    }
    let year = digits(b.get(0..4)?)?;
    let month = digits(b.get(5..7)?)?;
    let day = digits(b.get(8..10)?)?;
    let hour = digits(b.get(11..13)?)?;
    let minute = digits(b.get(14..16)?)?;
    let second = digits(b.get(17..19)?)?;
    let rest = b.get(19..b.len() - 1)?;
    let nanos = match rest {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            let mut n = digits(frac)?;
            for _ in frac.len()..9 {
                n *= 10;
            }
            n
        }
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second;
    secs.checked_mul(1_000_000_000)
        .and_then(|s| s.checked_add(nanos))
        .map(Timestamp::from_nanos)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fast_path_agrees_with_core_on_fixture_spellings() {
        for s in [
            "2023-05-25T13:44:05.478445995Z",
            "2021-01-11T23:46:19.82302759Z",
            "2022-05-11T12:54:45.615Z",
            "2022-10-18T03:16:18Z",
            "2000-02-29T00:00:00.1Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999999999Z",
        ] {
            assert_eq!(parse_time(s), Timestamp::parse_rfc3339(s), "{s}");
            assert!(
                fast(s.as_bytes()).is_some(),
                "{s} should take the fast path"
            );
        }
    }

    #[test]
    fn impossible_dates_are_errors() {
        assert!(parse_time("2023-02-29T00:00:00Z").is_err());
        assert!(parse_time("2023-13-01T00:00:00Z").is_err());
        assert!(parse_time("2023-01-01T24:00:00Z").is_err());
        assert!(parse_time("2023-01-01T00:00:00.Z").is_err());
    }

    proptest! {
        #[test]
        fn fast_path_always_agrees_with_core(
            y in 1678i64..2261, mo in 0i64..14, d in 0i64..32, h in 0i64..25, mi in 0i64..61,
            s in 0i64..61, frac in proptest::option::of("[0-9]{0,10}"),
        ) {
            let text = match &frac {
                Some(f) => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{f}Z"),
                None => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
            };
            prop_assert_eq!(parse_time(&text), Timestamp::parse_rfc3339(&text));
        }

        #[test]
        fn any_text_never_panics(s in "\\PC{0,40}") {
            let _ = parse_time(&s);
        }
    }
}
