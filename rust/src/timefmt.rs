//! ISO 8601 formatting of Arrow dates and timestamps, always in UTC.
//!
//! Days are turned into a proleptic Gregorian date with Howard Hinnant's
//! `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>),
//! which is exact for negative (pre-1970) day counts. Only years 0001–9999 are
//! formatted: the `*_range` helpers give the raw-value bounds for each unit so
//! callers can reject anything outside before formatting.

use arrow_schema::TimeUnit;

/// Day number (days since 1970-01-01) of 0001-01-01.
pub const MIN_EPOCH_DAYS: i64 = -719_162;
/// Day number of 9999-12-31.
pub const MAX_EPOCH_DAYS: i64 = 2_932_896;

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Microseconds since the epoch of 0001-01-01T00:00:00Z.
pub const MIN_EPOCH_MICROS: i64 = MIN_EPOCH_DAYS * MICROS_PER_DAY;
/// Microseconds since the epoch of 9999-12-31T23:59:59.999999Z.
pub const MAX_EPOCH_MICROS: i64 = (MAX_EPOCH_DAYS + 1) * MICROS_PER_DAY - 1;

/// Length of `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub const TIMESTAMP_LEN: usize = 27;
/// Length of `YYYY-MM-DD`.
pub const DATE_LEN: usize = 10;

/// `"00".."99"` concatenated: two ASCII digits per index.
const DIGITS2: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

#[inline(always)]
fn put2(buf: &mut [u8], at: usize, v: u32) {
    let i = (v as usize) * 2;
    buf[at] = DIGITS2[i];
    buf[at + 1] = DIGITS2[i + 1];
}

/// Proleptic Gregorian `(year, month, day)` of a day number (days since
/// 1970-01-01). Exact for any day whose year fits in an `i64`.
#[inline]
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD` of a day number in `MIN_EPOCH_DAYS..=MAX_EPOCH_DAYS`.
#[inline]
pub fn format_date(days: i64) -> [u8; DATE_LEN] {
    debug_assert!((MIN_EPOCH_DAYS..=MAX_EPOCH_DAYS).contains(&days));
    let (year, month, day) = civil_from_days(days);
    let year = year as u32;
    let mut buf = *b"0000-00-00";
    put2(&mut buf, 0, year / 100);
    put2(&mut buf, 2, year % 100);
    put2(&mut buf, 5, month);
    put2(&mut buf, 8, day);
    buf
}

/// Inclusive bounds of raw `Timestamp(unit)` values whose instant lies in
/// years 0001–9999.
pub const fn timestamp_range(unit: TimeUnit) -> (i64, i64) {
    match unit {
        TimeUnit::Second => (MIN_EPOCH_MICROS / 1_000_000, MAX_EPOCH_MICROS / 1_000_000),
        TimeUnit::Millisecond => (MIN_EPOCH_MICROS / 1_000, MAX_EPOCH_MICROS / 1_000),
        TimeUnit::Microsecond => (MIN_EPOCH_MICROS, MAX_EPOCH_MICROS),
        // i64 nanoseconds span 1677–2262: always in range.
        TimeUnit::Nanosecond => (i64::MIN, i64::MAX),
    }
}

/// Microseconds since the epoch of a raw value in `timestamp_range(unit)`;
/// nanoseconds are floored (towards negative infinity).
#[inline(always)]
pub fn to_epoch_micros(value: i64, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => value * 1_000_000,
        TimeUnit::Millisecond => value * 1_000,
        TimeUnit::Microsecond => value,
        TimeUnit::Nanosecond => value.div_euclid(1_000),
    }
}

/// Length of a quoted timestamp, `"YYYY-MM-DDTHH:MM:SS.ffffffZ"`.
pub const QUOTED_TIMESTAMP_LEN: usize = TIMESTAMP_LEN + 2;

/// Writes quoted timestamps, keeping a template with the date of the previous
/// call: consecutive rows usually share a day, which skips the calendar
/// arithmetic. Only the time of day is formatted per value, in place in the
/// output (see `sink::push_with` for why not via a local buffer).
#[derive(Debug, Clone)]
pub struct TimestampFormatter {
    last_day: i64,
    template: [u8; QUOTED_TIMESTAMP_LEN],
}

impl Default for TimestampFormatter {
    fn default() -> Self {
        let mut template = *b"\"1970-01-01T00:00:00.000000Z\"";
        template[1..=DATE_LEN].copy_from_slice(&format_date(0));
        Self {
            last_day: 0,
            template,
        }
    }
}

impl TimestampFormatter {
    /// Appends `micros` (in `MIN_EPOCH_MICROS..=MAX_EPOCH_MICROS`) quoted.
    #[inline]
    pub fn write_quoted(&mut self, micros: i64, out: &mut Vec<u8>) {
        debug_assert!((MIN_EPOCH_MICROS..=MAX_EPOCH_MICROS).contains(&micros));
        let day = micros.div_euclid(MICROS_PER_DAY);
        let in_day = micros.rem_euclid(MICROS_PER_DAY) as u64;
        if day != self.last_day {
            self.template[1..=DATE_LEN].copy_from_slice(&format_date(day));
            self.last_day = day;
        }
        out.extend_from_slice(&self.template);
        let dst = out
            .last_chunk_mut::<QUOTED_TIMESTAMP_LEN>()
            .expect("just extended");
        let secs = (in_day / 1_000_000) as u32;
        let frac = (in_day % 1_000_000) as u32;
        put2(dst, 12, secs / 3600);
        put2(dst, 15, (secs / 60) % 60);
        put2(dst, 18, secs % 60);
        put2(dst, 21, frac / 10_000);
        put2(dst, 23, (frac / 100) % 100);
        put2(dst, 25, frac % 100);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Day number of a civil date (Hinnant's `days_from_civil`), used as an
    /// independent inverse.
    fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let m = i64::from(m);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn quoted(fmt: &mut TimestampFormatter, micros: i64) -> String {
        let mut out = b"x".to_vec();
        fmt.write_quoted(micros, &mut out);
        assert_eq!(out.len(), 1 + QUOTED_TIMESTAMP_LEN);
        let text = String::from_utf8(out).unwrap();
        text[2..text.len() - 1].to_owned()
    }

    fn ts(micros: i64) -> String {
        quoted(&mut TimestampFormatter::default(), micros)
    }

    fn date(days: i64) -> String {
        String::from_utf8(format_date(days).to_vec()).unwrap()
    }

    #[test]
    fn bounds_are_the_expected_dates() {
        assert_eq!(date(MIN_EPOCH_DAYS), "0001-01-01");
        assert_eq!(date(MAX_EPOCH_DAYS), "9999-12-31");
        assert_eq!(ts(MIN_EPOCH_MICROS), "0001-01-01T00:00:00.000000Z");
        assert_eq!(ts(MAX_EPOCH_MICROS), "9999-12-31T23:59:59.999999Z");
        assert_eq!(days_from_civil(1, 1, 1), MIN_EPOCH_DAYS);
        assert_eq!(days_from_civil(9999, 12, 31), MAX_EPOCH_DAYS);
    }

    #[test]
    fn epoch_and_known_instants() {
        assert_eq!(ts(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(ts(1_767_323_045_000_000), "2026-01-02T03:04:05.000000Z");
        assert_eq!(ts(951_782_400_123_456), "2000-02-29T00:00:00.123456Z");
    }

    #[test]
    fn pre_1970() {
        assert_eq!(ts(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(ts(-86_400_000_000), "1969-12-31T00:00:00.000000Z");
        assert_eq!(ts(-86_400_000_001), "1969-12-30T23:59:59.999999Z");
        // 1900 is not a leap year; 1600 is.
        let d = days_from_civil(1900, 2, 28);
        assert_eq!(date(d), "1900-02-28");
        assert_eq!(date(d + 1), "1900-03-01");
        let d = days_from_civil(1600, 2, 29);
        assert_eq!(date(d), "1600-02-29");
    }

    #[test]
    fn leap_years() {
        for (y, leap) in [
            (2000, true),
            (2024, true),
            (2100, false),
            (2023, false),
            (4, true),
        ] {
            let feb28 = days_from_civil(y, 2, 28);
            let expected = if leap { "-02-29" } else { "-03-01" };
            assert_eq!(&date(feb28 + 1)[4..], expected, "year {y}");
        }
    }

    #[test]
    fn roundtrip_every_day_in_range() {
        let mut fmt = TimestampFormatter::default();
        let mut prev = (0i64, 12u32, 31u32);
        for days in MIN_EPOCH_DAYS..=MAX_EPOCH_DAYS {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!((1..=12).contains(&m) && (1..=31).contains(&d));
            assert!((y, m, d) > prev, "{days}");
            prev = (y, m, d);
            if days % 997 == 0 {
                let s = quoted(&mut fmt, days * MICROS_PER_DAY + 43_200_000_001);
                assert_eq!(s, format!("{y:04}-{m:02}-{d:02}T12:00:00.000001Z"));
            }
        }
    }

    #[test]
    fn cache_does_not_leak_between_days() {
        let mut fmt = TimestampFormatter::default();
        let a = quoted(&mut fmt, 0);
        let b = quoted(&mut fmt, -1);
        let c = quoted(&mut fmt, 0);
        assert_eq!(a, c);
        assert_eq!(b, "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn unit_ranges_and_conversion() {
        for unit in [
            TimeUnit::Second,
            TimeUnit::Millisecond,
            TimeUnit::Microsecond,
        ] {
            let (lo, hi) = timestamp_range(unit);
            assert_eq!(to_epoch_micros(lo, unit), MIN_EPOCH_MICROS);
            assert!(to_epoch_micros(hi, unit) <= MAX_EPOCH_MICROS);
        }
        let (_, hi_s) = timestamp_range(TimeUnit::Second);
        assert_eq!(
            ts(to_epoch_micros(hi_s, TimeUnit::Second)),
            "9999-12-31T23:59:59.000000Z"
        );
        // Nanoseconds floor towards negative infinity.
        assert_eq!(to_epoch_micros(-1, TimeUnit::Nanosecond), -1);
        assert_eq!(to_epoch_micros(-1000, TimeUnit::Nanosecond), -1);
        assert_eq!(to_epoch_micros(-1001, TimeUnit::Nanosecond), -2);
        assert_eq!(to_epoch_micros(1999, TimeUnit::Nanosecond), 1);
        assert_eq!(
            ts(to_epoch_micros(i64::MIN, TimeUnit::Nanosecond)),
            "1677-09-21T00:12:43.145224Z"
        );
        assert_eq!(
            ts(to_epoch_micros(i64::MAX, TimeUnit::Nanosecond)),
            "2262-04-11T23:47:16.854775Z"
        );
    }
}
