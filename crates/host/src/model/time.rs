//! RFC 3339 timestamps as Go's `time.Time` writes and reads them.

use super::*;

pub(super) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both fit in u32: day is 1..=31 and month 1..=12.
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub(super) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Why a timestamp cannot be written; turned into a [`ModelError`] with a field.
pub(super) enum TimeRangeError {
    Nanos(u32),
    Year(i64),
}

impl TimeRangeError {
    pub(super) fn at(self, field: String) -> ModelError {
        match self {
            TimeRangeError::Nanos(nanoseconds) => {
                ModelError::NanosecondsOutOfRange { field, nanoseconds }
            }
            TimeRangeError::Year(year) => ModelError::YearOutOfRange { field, year },
        }
    }
}

pub(super) fn push2(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&[b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8]);
}

/// Whether the encoder can write `t`: a UTC year in 0..=9999 and
/// nanoseconds below a second (no allocation, for the decoder).
pub(super) fn writable(t: Timestamp) -> bool {
    // 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
    const FIRST: i64 = -62_167_219_200;
    const LAST: i64 = 253_402_300_799;
    t.nanoseconds < NANOS_PER_SEC && (FIRST..=LAST).contains(&t.seconds)
}

pub(super) fn append_rfc3339(out: &mut Vec<u8>, t: Timestamp) -> Result<(), TimeRangeError> {
    if t.nanoseconds >= NANOS_PER_SEC {
        return Err(TimeRangeError::Nanos(t.nanoseconds));
    }
    let (year, month, day) = civil_from_days(t.seconds.div_euclid(SECS_PER_DAY));
    let year = match u32::try_from(year) {
        Ok(y) if y <= 9999 => y,
        _ => return Err(TimeRangeError::Year(year)),
    };
    let secs = t.seconds.rem_euclid(SECS_PER_DAY) as u32;
    push2(out, year / 100);
    push2(out, year % 100);
    out.push(b'-');
    push2(out, month);
    out.push(b'-');
    push2(out, day);
    out.push(b'T');
    push2(out, secs / 3600);
    out.push(b':');
    push2(out, secs / 60 % 60);
    out.push(b':');
    push2(out, secs % 60);
    if t.nanoseconds != 0 {
        let mut digits = [0u8; 9];
        let mut n = t.nanoseconds;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        let len = 9 - digits.iter().rev().take_while(|&&d| d == b'0').count();
        out.push(b'.');
        out.extend_from_slice(&digits[..len]);
    }
    out.push(b'Z');
    Ok(())
}

/// Go's `parseRFC3339` (the strict form `time.Time.UnmarshalJSON` uses).
pub(super) fn parse_rfc3339(s: &[u8]) -> Option<Timestamp> {
    fn num(s: &[u8], min: u32, max: u32) -> Option<u32> {
        let mut v = 0u32;
        for &c in s {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        (min..=max).contains(&v).then_some(v)
    }
    if s.len() < 19 || [s[4], s[7], s[10], s[13], s[16]] != *b"--T::" {
        return None;
    }
    let year = i64::from(num(&s[0..4], 0, 9999)?);
    let month = num(&s[5..7], 1, 12)?;
    let day = num(&s[8..10], 1, days_in_month(year, month))?;
    let hour = i64::from(num(&s[11..13], 0, 23)?);
    let minute = i64::from(num(&s[14..16], 0, 59)?);
    let second = i64::from(num(&s[17..19], 0, 59)?);
    let mut rest = &s[19..];
    let mut nanoseconds = 0;
    if rest.len() >= 2 && rest[0] == b'.' && rest[1].is_ascii_digit() {
        let n = 1 + rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        // Keep the first nine digits, padded with zeros.
        let digits = &rest[1..n.min(10)];
        for i in 0..9 {
            nanoseconds = nanoseconds * 10 + digits.get(i).map_or(0, |&c| u32::from(c - b'0'));
        }
        rest = &rest[n..];
    }
    let offset = match rest {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let secs = i64::from((num(&[*h1, *h2], 0, 23)? * 60 + num(&[*m1, *m2], 0, 59)?) * 60);
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let seconds =
        days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second
            - offset;
    Some(Timestamp {
        seconds,
        nanoseconds,
    })
}
