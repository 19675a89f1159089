//! A five-field cron expression (minute hour day-of-month month day-of-week),
//! as crontab(5) reads it: `*`, lists, ranges, steps (`*/15`, `1-5/2`), month
//! and day names (`JAN`, `MON`), 0 or 7 for Sunday; when both day fields are
//! restricted a day matching either one matches. Evaluated on civil (wall
//! clock) times; the time zone is the window's business.

use std::str::FromStr;

use jiff::civil::{Date, DateTime, Time};
use jiff::ToSpan;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_any: bool,
    weekdays_any: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Bits `lo..=hi` of one field; `names` are the values from `lo` upwards.
fn field(text: &str, what: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u64, String> {
    let value = |v: &str| -> Result<u32, String> {
        let upper = v.to_ascii_uppercase();
        if let Some(i) = names.iter().position(|n| *n == upper) {
            return Ok(lo + i as u32);
        }
        let n: u32 = v
            .parse()
            .map_err(|_| format!("{what}: {v:?} is not a number{}", name_hint(names)))?;
        if n < lo || n > hi {
            return Err(format!("{what}: {n} is outside {lo}-{hi}"));
        }
        Ok(n)
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("{what}: step {s:?} is not a number"))?;
                if step == 0 {
                    return Err(format!("{what}: a step of 0"));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (from, to) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if step > 1 { hi } else { v })
        };
        if from > to {
            return Err(format!("{what}: range {range:?} runs backwards"));
        }
        let mut v = from;
        while v <= to {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

fn name_hint(names: &[&str]) -> String {
    match names.first() {
        Some(first) => format!(" (or a name like {first})"),
        None => String::new(),
    }
}

impl FromStr for Cron {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let f: Vec<&str> = s.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!(
                "{s:?}: want 5 fields (minute hour day-of-month month day-of-week), got {}",
                f.len()
            ));
        }
        let mut weekdays = field(f[4], "day-of-week", 0, 7, &WEEKDAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays & !(1 << 7)) | 1; // 7 is Sunday too
        }
        Ok(Cron {
            minutes: field(f[0], "minute", 0, 59, &[])?,
            hours: field(f[1], "hour", 0, 23, &[])?,
            days: field(f[2], "day-of-month", 1, 31, &[])?,
            months: field(f[3], "month", 1, 12, &MONTHS)?,
            weekdays,
            days_any: f[2].starts_with('*'),
            weekdays_any: f[4].starts_with('*'),
        })
    }
}

impl Cron {
    fn day_matches(&self, d: Date) -> bool {
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        match (self.days_any, self.weekdays_any) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    /// The first matching minute strictly after `after` (within 5 years).
    pub fn next_after(&self, after: DateTime) -> Option<DateTime> {
        let mut t = after
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let limit = after.checked_add(5.years()).ok()?;
        while t <= limit {
            let d = t.date();
            if self.months & (1 << d.month()) == 0 {
                let first = d.first_of_month().checked_add(1.month()).ok()?;
                t = first.to_datetime(Time::midnight());
                continue;
            }
            if !self.day_matches(d) {
                t = d.tomorrow().ok()?.to_datetime(Time::midnight());
                continue;
            }
            if self.hours & (1 << t.hour()) == 0 {
                t = t
                    .with()
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if self.minutes & (1 << t.minute()) == 0 {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            return Some(t);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn next(expr: &str, after: DateTime) -> DateTime {
        expr.parse::<Cron>().unwrap().next_after(after).unwrap()
    }

    #[test]
    fn finds_the_next_minute_that_matches() {
        let t = date(2026, 11, 29).at(9, 30, 15, 0); // a Sunday
        assert_eq!(next("* * * * *", t), date(2026, 11, 29).at(9, 31, 0, 0));
        assert_eq!(next("0 2 * * TUE", t), date(2026, 12, 1).at(2, 0, 0, 0));
        assert_eq!(next("0 2 * * 2", t), date(2026, 12, 1).at(2, 0, 0, 0));
        assert_eq!(next("*/15 9 * * *", t), date(2026, 11, 29).at(9, 45, 0, 0));
        assert_eq!(next("0 0 1 JAN *", t), date(2027, 1, 1).at(0, 0, 0, 0));
        assert_eq!(next("0 0 29 2 *", t), date(2028, 2, 29).at(0, 0, 0, 0));
        assert_eq!(next("30 9 * * 0", t), date(2026, 12, 6).at(9, 30, 0, 0));
        assert_eq!(next("30 9 * * 7", t), date(2026, 12, 6).at(9, 30, 0, 0));
        // Both day fields restricted: either matches (the 1st, or a Friday).
        assert_eq!(next("0 0 1 * FRI", t), date(2026, 12, 1).at(0, 0, 0, 0));
        assert_eq!(
            next("0 0 15 * 5", date(2026, 12, 1).at(1, 0, 0, 0)),
            date(2026, 12, 4).at(0, 0, 0, 0)
        );
        assert_eq!(
            next("0 22-23/1 * * 1-5", t),
            date(2026, 11, 30).at(22, 0, 0, 0)
        );
    }

    #[test]
    fn a_bad_expression_is_named() {
        for (expr, want) in [
            ("0 2 * *", "want 5 fields"),
            ("60 * * * *", "minute: 60 is outside 0-59"),
            ("* 24 * * *", "hour: 24 is outside 0-23"),
            ("* * 0 * *", "day-of-month: 0 is outside 1-31"),
            (
                "* * * FOO *",
                "month: \"FOO\" is not a number (or a name like JAN)",
            ),
            ("* * * * */0", "day-of-week: a step of 0"),
            ("5-1 * * * *", "minute: range \"5-1\" runs backwards"),
        ] {
            let e = expr.parse::<Cron>().unwrap_err();
            assert!(e.contains(want), "{expr}: {e}");
        }
        assert_eq!(
            "0 0 31 2 *"
                .parse::<Cron>()
                .unwrap()
                .next_after(date(2026, 1, 1).at(0, 0, 0, 0)),
            None
        );
    }
}
