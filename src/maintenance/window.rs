//! Maintenance windows: a cron schedule of starts, a duration and an IANA
//! time zone each (several allowed). Rotation waves start only inside one; a
//! wave in flight when it closes finishes. The schedule is read on the wall
//! clock of the zone, so `0 2 * * TUE` in Europe/Berlin opens at 02:00 Berlin
//! time, summer or winter.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};
use serde::{Deserialize, Serialize};

use super::cron::Cron;

/// One window as the config writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WindowSpec {
    /// When windows open: five cron fields, on the zone's wall clock.
    pub schedule: String,
    /// How long each stays open (Go duration: `4h`, `90m`).
    pub duration: String,
    /// IANA time zone (`Europe/Berlin`); UTC when absent.
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Window {
    pub spec: WindowSpec,
    cron: Cron,
    duration: Duration,
    tz: TimeZone,
}

impl Window {
    /// Checks a spec; the error names the field.
    pub fn new(spec: WindowSpec) -> Result<Self, String> {
        let cron = spec
            .schedule
            .parse::<Cron>()
            .map_err(|e| format!("schedule: {e}"))?;
        let duration = crate::duration::parse_go_duration(&spec.duration)
            .map_err(|e| format!("duration: {e}"))?;
        if duration < Duration::from_secs(60) {
            return Err(format!("duration: {:?} is under a minute", spec.duration));
        }
        let tz = match &spec.time_zone {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name)
                .map_err(|_| format!("timeZone: {name:?} is not an IANA time zone"))?,
        };
        if cron
            .next_after(jiff::civil::date(2026, 1, 1).at(0, 0, 0, 0))
            .is_none()
        {
            return Err(format!("schedule: {:?} never matches", spec.schedule));
        }
        Ok(Self {
            spec,
            cron,
            duration,
            tz,
        })
    }

    /// The first start strictly after `t`. A wall-clock time a DST change
    /// skips maps after the gap; one it repeats, to its first occurrence.
    fn start_after(&self, t: Timestamp) -> Option<Timestamp> {
        let mut civil = t.to_zoned(self.tz.clone()).datetime();
        loop {
            let next = self.cron.next_after(civil)?;
            let at = next.to_zoned(self.tz.clone()).ok()?.timestamp();
            if at > t {
                return Some(at);
            }
            civil = next;
        }
    }

    /// When the window open at `now` closes (None: closed now).
    pub fn closes(&self, now: Timestamp) -> Option<Timestamp> {
        let span = SignedDuration::try_from(self.duration).ok()?;
        let mut t = now.checked_sub(span).ok()?;
        let mut closes = None;
        while let Some(start) = self.start_after(t) {
            if start > now {
                break;
            }
            closes = Some(start.checked_add(span).ok()?);
            t = start;
        }
        closes.filter(|c| *c > now)
    }

    /// The next opening after `now`.
    pub fn opens(&self, now: Timestamp) -> Option<Timestamp> {
        self.start_after(now)
    }

    /// The next opening after `now`, on the window's zone (what a person
    /// who wrote the schedule reads).
    pub fn opens_local(&self, now: Timestamp) -> Option<Zoned> {
        self.start_after(now).map(|t| t.to_zoned(self.tz.clone()))
    }
}

/// Whether waves may start now, by every configured window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum WindowState {
    /// No windows configured: any time.
    Always,
    Open {
        closes: Timestamp,
    },
    Closed {
        /// The earliest next opening of any window (None: none ahead).
        opens: Option<Timestamp>,
        /// The same opening on its window's zone's clock.
        #[serde(rename = "opensLocal", skip_serializing_if = "Option::is_none")]
        opens_local: Option<Zoned>,
    },
}

/// The state at `now` of a set of windows (open when any is).
pub fn state(windows: &[Window], now: Timestamp) -> WindowState {
    if windows.is_empty() {
        return WindowState::Always;
    }
    if let Some(closes) = windows.iter().filter_map(|w| w.closes(now)).max() {
        return WindowState::Open { closes };
    }
    let opens_local = windows
        .iter()
        .filter_map(|w| w.opens_local(now))
        .min_by_key(|z| z.timestamp());
    WindowState::Closed {
        opens: opens_local.as_ref().map(Zoned::timestamp),
        opens_local,
    }
}

impl WindowState {
    pub fn is_open(&self) -> bool {
        !matches!(self, WindowState::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(schedule: &str, duration: &str, tz: Option<&str>) -> Window {
        Window::new(WindowSpec {
            schedule: schedule.into(),
            duration: duration.into(),
            time_zone: tz.map(Into::into),
        })
        .unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Closed until `at`, a start of a window of zone `tz`.
    fn closed(at: &str, tz: &str) -> WindowState {
        WindowState::Closed {
            opens: Some(ts(at)),
            opens_local: Some(ts(at).to_zoned(TimeZone::get(tz).unwrap())),
        }
    }

    #[test]
    fn the_status_shows_the_next_opening_on_its_zones_clock_too() {
        let w = [
            window("0 22 * * *", "2h", Some("Asia/Seoul")),
            window("0 2 * * TUE", "4h", Some("Europe/Berlin")),
        ];
        assert_eq!(
            serde_json::to_value(state(&w, ts("2026-11-29T12:00:00Z"))).unwrap(),
            serde_json::json!({
                "state": "closed",
                "opens": "2026-11-29T13:00:00Z",
                "opensLocal": "2026-11-29T22:00:00+09:00[Asia/Seoul]"
            })
        );
        assert_eq!(
            serde_json::to_value(state(&w[1..], ts("2026-12-01T00:30:00Z"))).unwrap(),
            serde_json::json!({
                "state": "closed",
                "opens": "2026-12-01T01:00:00Z",
                "opensLocal": "2026-12-01T02:00:00+01:00[Europe/Berlin]"
            })
        );
    }

    #[test]
    fn a_window_is_read_on_its_zones_wall_clock_in_summer_and_winter() {
        // Tuesdays 02:00 Berlin for 4 h: 01:00Z in winter (CET), 00:00Z in summer (CEST).
        let w = [window("0 2 * * TUE", "4h", Some("Europe/Berlin"))];
        assert_eq!(
            state(&w, ts("2026-12-01T00:30:00Z")),
            closed("2026-12-01T01:00:00Z", "Europe/Berlin")
        );
        assert_eq!(
            state(&w, ts("2026-12-01T01:00:00Z")),
            WindowState::Open {
                closes: ts("2026-12-01T05:00:00Z")
            }
        );
        assert_eq!(
            state(&w, ts("2026-12-01T04:59:59Z")),
            WindowState::Open {
                closes: ts("2026-12-01T05:00:00Z")
            }
        );
        assert_eq!(
            state(&w, ts("2026-12-01T05:00:00Z")),
            closed("2026-12-08T01:00:00Z", "Europe/Berlin")
        );
        assert_eq!(
            state(&w, ts("2026-07-07T00:10:00Z")),
            WindowState::Open {
                closes: ts("2026-07-07T04:00:00Z")
            }
        );
    }

    #[test]
    fn the_earliest_opening_and_the_latest_close_of_several_windows() {
        let w = [
            window("0 22 * * *", "2h", Some("Asia/Seoul")),
            window("30 23 * * *", "1h", Some("Asia/Seoul")),
        ];
        // 22:00 KST = 13:00Z; 23:30 KST = 14:30Z.
        assert_eq!(
            state(&w, ts("2026-11-29T14:45:00Z")),
            WindowState::Open {
                closes: ts("2026-11-29T15:30:00Z")
            }
        );
        assert_eq!(
            state(&w, ts("2026-11-29T12:00:00Z")),
            closed("2026-11-29T13:00:00Z", "Asia/Seoul")
        );
        assert_eq!(state(&[], ts("2026-11-29T12:00:00Z")), WindowState::Always);
    }

    #[test]
    fn a_start_a_dst_change_skips_or_repeats_opens_once() {
        // New York: 2026-03-08 02:30 does not exist (→ 03:30 EDT = 07:30Z);
        // 2026-11-01 01:30 happens twice (the first, EDT = 05:30Z, counts).
        let w = window("30 2 * * *", "1h", Some("America/New_York"));
        assert_eq!(
            w.opens(ts("2026-03-08T06:00:00Z")),
            Some(ts("2026-03-08T07:30:00Z"))
        );
        let w = window("30 1 * * *", "1h", Some("America/New_York"));
        assert_eq!(
            w.opens(ts("2026-11-01T05:00:00Z")),
            Some(ts("2026-11-01T05:30:00Z"))
        );
        assert_eq!(
            w.opens(ts("2026-11-01T05:30:00Z")),
            Some(ts("2026-11-02T06:30:00Z"))
        );
    }

    #[test]
    fn a_bad_window_is_named() {
        let bad = |schedule: &str, duration: &str, tz: Option<&str>| {
            Window::new(WindowSpec {
                schedule: schedule.into(),
                duration: duration.into(),
                time_zone: tz.map(Into::into),
            })
            .unwrap_err()
        };
        assert!(bad("0 2 * *", "4h", None).starts_with("schedule: "));
        assert!(bad("0 2 * * *", "4 hours", None).starts_with("duration: "));
        assert_eq!(
            bad("0 2 * * *", "30s", None),
            "duration: \"30s\" is under a minute"
        );
        assert_eq!(
            bad("0 2 * * *", "4h", Some("Mars/Olympus")),
            "timeZone: \"Mars/Olympus\" is not an IANA time zone"
        );
        assert_eq!(
            bad("0 0 31 2 *", "4h", None),
            "schedule: \"0 0 31 2 *\" never matches"
        );
    }
}
