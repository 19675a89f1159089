//! A NodePool's `spec.disruption.budgets`, evaluated as Karpenter does:
//! - `nodes` is a count ("3") or a percent of the NodePool's nodes ("10%"), rounded up;
//! - a budget with `schedule` (cron, UTC) and `duration` applies only inside that window;
//! - the allowed count is the minimum over the budgets active now, minus nodes
//!   already being disrupted (deleting or NotReady), never below zero;
//! - no active budget means no limit.
//!
//! Budgets that name `reasons` are Karpenter's own (Drifted, Underutilized, Empty);
//! node-drain's rotation is none of those, so it honours every budget: the strictest wins.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// One entry of `spec.disruption.budgets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub nodes: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<String>>,
}

/// A budget that cannot be read: the plan fails rather than guess.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("disruption budget nodes {0:?} is neither a count nor a percent")]
    Nodes(String),
    #[error("disruption budget schedule {schedule:?} is not a cron expression: {reason}")]
    Schedule { schedule: String, reason: String },
    #[error("disruption budget duration {0:?} is not a duration like 8h or 1h30m")]
    Duration(String),
    #[error("disruption budget has a schedule but no duration (or a duration but no schedule)")]
    ScheduleWithoutDuration,
}

/// How many nodes the budgets allow node-drain to take out now, with a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// None: no budget is active now, so no limit.
    pub allowed: Option<usize>,
    pub detail: String,
}

/// Evaluates the budgets at `now` for a NodePool of `num_nodes` of which
/// `disrupting` are deleting or NotReady.
pub fn allowed_disruptions(
    budgets: &[Budget],
    num_nodes: usize,
    disrupting: usize,
    now: DateTime<Utc>,
) -> Result<Allowed, BudgetError> {
    let mut strictest: Option<(usize, &Budget)> = None;
    for budget in budgets {
        if !is_active(budget, now)? {
            continue;
        }
        let value = scaled_nodes(&budget.nodes, num_nodes)?;
        if strictest.is_none_or(|(current, _)| value < current) {
            strictest = Some((value, budget));
        }
    }
    Ok(match strictest {
        None => Allowed {
            allowed: None,
            detail: "no disruption budget active now".into(),
        },
        Some((value, budget)) => {
            let allowed = value.saturating_sub(disrupting);
            let window = match (&budget.schedule, &budget.duration) {
                (Some(s), Some(d)) => format!(", schedule {s:?} for {d}"),
                _ => String::new(),
            };
            Allowed {
                allowed: Some(allowed),
                detail: format!(
                    "budget nodes {:?}{window} = {value} of {num_nodes} nodes, minus {disrupting} deleting or NotReady",
                    budget.nodes
                ),
            }
        }
    })
}

/// `nodes` scaled against the NodePool size, percent rounded up (Karpenter's
/// `GetScaledValueFromIntOrPercent(..., roundUp=true)`).
pub fn scaled_nodes(nodes: &str, num_nodes: usize) -> Result<usize, BudgetError> {
    let bad = || BudgetError::Nodes(nodes.to_string());
    if let Some(percent) = nodes.strip_suffix('%') {
        let percent: usize = percent.parse().map_err(|_| bad())?;
        Ok((percent * num_nodes).div_ceil(100))
    } else {
        nodes.parse().map_err(|_| bad())
    }
}

/// Whether a budget applies at `now`: always without a schedule, otherwise when
/// the last time the schedule fired is within `duration` before `now`.
pub fn is_active(budget: &Budget, now: DateTime<Utc>) -> Result<bool, BudgetError> {
    let (schedule, duration) = match (&budget.schedule, &budget.duration) {
        (None, None) => return Ok(true),
        (Some(s), Some(d)) => (s, d),
        _ => return Err(BudgetError::ScheduleWithoutDuration),
    };
    let duration =
        parse_duration(duration).ok_or_else(|| BudgetError::Duration(duration.clone()))?;
    let cron = croner::Cron::new(&expand_macro(schedule))
        .parse()
        .map_err(|e| BudgetError::Schedule {
            schedule: schedule.clone(),
            reason: e.to_string(),
        })?;
    // Karpenter: next fire strictly after (now - duration); active if it is not after now.
    let checkpoint = now - duration;
    let next =
        cron.find_next_occurrence(&checkpoint, false)
            .map_err(|e| BudgetError::Schedule {
                schedule: schedule.clone(),
                reason: e.to_string(),
            })?;
    Ok(next <= now)
}

/// Karpenter accepts the robfig/cron macros; croner knows most, map them all explicitly.
fn expand_macro(schedule: &str) -> String {
    match schedule.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *".into(),
        "@monthly" => "0 0 1 * *".into(),
        "@weekly" => "0 0 * * 0".into(),
        "@daily" | "@midnight" => "0 0 * * *".into(),
        "@hourly" => "0 * * * *".into(),
        other => other.to_string(),
    }
}

/// Parses a budget's Go duration ("8h", "1h30m", "90s", "10m0s", "1.5h").
pub fn parse_duration(text: &str) -> Option<Duration> {
    let d = crate::duration::parse_go_duration(text).ok()?;
    Duration::from_std(d).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn budget(nodes: &str, schedule: Option<&str>, duration: Option<&str>) -> Budget {
        Budget {
            nodes: nodes.into(),
            schedule: schedule.map(Into::into),
            duration: duration.map(Into::into),
            reasons: None,
        }
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        // 2026-11-18 is a Wednesday.
        Utc.with_ymd_and_hms(2026, 11, 18, h, m, 0).unwrap()
    }

    #[test]
    fn percent_rounds_up_and_counts_are_taken_as_is() {
        let cases = [
            ("10%", 8, 1),
            ("10%", 10, 1),
            ("10%", 11, 2),
            ("0%", 8, 0),
            ("100%", 8, 8),
            ("3", 8, 3),
            ("0", 8, 0),
            ("25%", 0, 0),
        ];
        for (nodes, n, want) in cases {
            assert_eq!(scaled_nodes(nodes, n).unwrap(), want, "{nodes} of {n}");
        }
        assert!(scaled_nodes("ten", 8).is_err());
        assert!(scaled_nodes("-1", 8).is_err());
        assert!(scaled_nodes("x%", 8).is_err());
    }

    #[test]
    fn schedule_windows() {
        // 09:00-17:00 on weekdays.
        let b = budget("0", Some("0 9 * * 1-5"), Some("8h"));
        let cases = [
            (8, 59, false),
            (9, 0, true),
            (12, 30, true),
            (16, 59, true),
            (17, 0, false),
            (23, 0, false),
        ];
        for (h, m, want) in cases {
            assert_eq!(is_active(&b, at(h, m)).unwrap(), want, "{h:02}:{m:02}");
        }
        assert!(is_active(&budget("1", Some("@daily"), Some("1h")), at(0, 30)).unwrap());
        assert!(!is_active(&budget("1", Some("@daily"), Some("1h")), at(1, 30)).unwrap());
    }

    #[test]
    fn strictest_active_budget_wins_minus_disrupting() {
        let budgets = [budget("50%", None, None), budget("2", None, None)];
        let a = allowed_disruptions(&budgets, 8, 0, at(12, 0)).unwrap();
        assert_eq!(a.allowed, Some(2));
        let a = allowed_disruptions(&budgets, 8, 1, at(12, 0)).unwrap();
        assert_eq!(a.allowed, Some(1));
        let a = allowed_disruptions(&budgets, 8, 5, at(12, 0)).unwrap();
        assert_eq!(a.allowed, Some(0));
    }

    #[test]
    fn zero_budget_inside_window_blocks_and_outside_does_not() {
        let budgets = [
            budget("10%", None, None),
            budget("0", Some("0 9 * * 1-5"), Some("8h")),
        ];
        assert_eq!(
            allowed_disruptions(&budgets, 8, 0, at(10, 0))
                .unwrap()
                .allowed,
            Some(0)
        );
        assert_eq!(
            allowed_disruptions(&budgets, 8, 0, at(20, 0))
                .unwrap()
                .allowed,
            Some(1)
        );
    }

    #[test]
    fn no_active_budget_is_no_limit() {
        assert_eq!(
            allowed_disruptions(&[], 8, 0, at(10, 0)).unwrap().allowed,
            None
        );
        let only_nightly = [budget("1", Some("0 2 * * *"), Some("1h"))];
        assert_eq!(
            allowed_disruptions(&only_nightly, 8, 0, at(10, 0))
                .unwrap()
                .allowed,
            None
        );
    }

    #[test]
    fn unreadable_budgets_fail() {
        assert!(is_active(&budget("1", Some("not cron"), Some("1h")), at(0, 0)).is_err());
        assert!(is_active(
            &budget("1", Some("0 9 * * *"), Some("eight hours")),
            at(0, 0)
        )
        .is_err());
        assert_eq!(
            is_active(&budget("1", Some("0 9 * * *"), None), at(0, 0)),
            Err(BudgetError::ScheduleWithoutDuration)
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("8h"), Some(Duration::hours(8)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::minutes(90)));
        assert_eq!(parse_duration("10m0s"), Some(Duration::minutes(10)));
        assert_eq!(parse_duration("90"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("1d"), None);
    }
}
