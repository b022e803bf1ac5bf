//! Engine time: a nanosecond UTC timestamp passed in by callers, never read inside core.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Where adapters read "now" from (the server's clock, the simulated cluster's, a fixed one
/// in tests). Core itself never calls one: its callers pass the time in.
pub type Clock = std::sync::Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// A point in time, nanoseconds since the Unix epoch (UTC).
///
/// Falco spells alert times as RFC 3339 with up to nine fractional digits; this keeps all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

/// The timestamp could not be read as RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 time {input:?} (expected e.g. 2023-05-25T13:44:05.478445995Z)")]
pub struct TimestampError {
    input: String,
}

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From nanoseconds since the Unix epoch.
    pub const fn from_nanos(nanos: i64) -> Self {
        Timestamp(nanos)
    }

    /// From whole seconds since the Unix epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// Seconds since the Unix epoch, as a float (for rates and plots).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Parse RFC 3339 (`2023-05-25T13:44:05.478445995Z`, any offset, 0–9 fractional digits).
    pub fn parse_rfc3339(input: &str) -> Result<Self, TimestampError> {
        let err = || TimestampError {
            input: input.chars().take(64).collect(),
        };
        let parsed = OffsetDateTime::parse(input, &Rfc3339).map_err(|_| err())?;
        let nanos = i64::try_from(parsed.unix_timestamp_nanos()).map_err(|_| err())?;
        Ok(Timestamp(nanos))
    }

    /// RFC 3339 in UTC with nine fractional digits, the way Falco writes it.
    pub fn to_rfc3339(self) -> String {
        self.with_rfc3339(str::to_owned)
    }

    /// Calls `f` with the RFC 3339 text of [`Timestamp::to_rfc3339`], formatted on the stack:
    /// serializers and audit lines write it without an allocation.
    pub fn with_rfc3339<R>(self, f: impl FnOnce(&str) -> R) -> R {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000);
        let Ok(dt) = OffsetDateTime::from_unix_timestamp(secs) else {
            return f(&format!("@{}", self.0));
        };
        // YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ
        let mut buf = *b"0000-00-00T00:00:00.000000000Z";
        let mut put = |at: usize, width: usize, mut v: u32| {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        // i64 nanoseconds span the years 1677 to 2262: always four digits.
        put(0, 4, dt.year().unsigned_abs());
        put(5, 2, u32::from(u8::from(dt.month())));
        put(8, 2, u32::from(dt.day()));
        put(11, 2, u32::from(dt.hour()));
        put(14, 2, u32::from(dt.minute()));
        put(17, 2, u32::from(dt.second()));
        put(20, 9, u32::try_from(nanos).unwrap_or(0));
        // Only ASCII digits and separators were written.
        f(std::str::from_utf8(&buf).unwrap_or_default())
    }

    /// `self + d`, saturating.
    pub fn plus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_nanos(d)))
    }

    /// `self - d`, saturating.
    pub fn minus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(duration_nanos(d)))
    }

    /// How long after `earlier` this is (zero when it is not later).
    pub fn since(self, earlier: Timestamp) -> Duration {
        let diff = self.0.saturating_sub(earlier.0);
        if diff <= 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(diff.unsigned_abs())
        }
    }
}

fn duration_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_rfc3339(|s| f.write_str(s))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.with_rfc3339(|s| serializer.serialize_str(s))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nine_fractional_digits_round_trip() {
        let t = Timestamp::parse_rfc3339("2023-05-25T13:44:05.478445995Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2023-05-25T13:44:05.478445995Z");
    }

    #[test]
    fn zero_three_and_six_fractional_digits_parse() {
        let base = Timestamp::parse_rfc3339("2023-05-25T13:44:05Z").unwrap();
        let ms = Timestamp::parse_rfc3339("2023-05-25T13:44:05.478Z").unwrap();
        let us = Timestamp::parse_rfc3339("2023-05-25T13:44:05.478445Z").unwrap();
        assert_eq!(ms.as_nanos() - base.as_nanos(), 478_000_000);
        assert_eq!(us.as_nanos() - base.as_nanos(), 478_445_000);
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let t = Timestamp::parse_rfc3339("2023-05-25T15:44:05+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2023-05-25T13:44:05.000000000Z");
    }

    proptest::proptest! {
        #[test]
        fn formatting_agrees_with_the_time_crate(
            secs in -9_223_372_035_i64..9_223_372_035, // what i64 nanoseconds hold: 1677 to 2262
            nanos in 0_i64..1_000_000_000,
        ) {
            use time::format_description::well_known::Rfc3339;
            let t = Timestamp::from_nanos(secs * 1_000_000_000 + nanos);
            let ours = t.to_rfc3339();
            let dt = OffsetDateTime::from_unix_timestamp(secs).unwrap();
            let theirs = dt.replace_nanosecond(u32::try_from(nanos).unwrap()).unwrap().format(&Rfc3339).unwrap();
            // The time crate trims trailing fractional zeros: compare the date and time, then
            // the instant.
            proptest::prop_assert_eq!(&ours[..19], &theirs[..19]);
            proptest::prop_assert_eq!(ours.len(), 30);
            proptest::prop_assert_eq!(Timestamp::parse_rfc3339(&ours).unwrap(), t);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
        assert!(Timestamp::parse_rfc3339("").is_err());
    }

    #[test]
    fn since_never_goes_negative() {
        let a = Timestamp::from_secs(10);
        let b = Timestamp::from_secs(5);
        assert_eq!(a.since(b), Duration::from_secs(5));
        assert_eq!(b.since(a), Duration::ZERO);
    }
}
