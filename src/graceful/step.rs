//! The next step of one pod's graceful drain, decided from its record and
//! what was just read about it (pure, table-tested). The worker does what
//! this names, writes the new step onto the pod, and asks again.

use chrono::{DateTime, Duration, Utc};

use super::record::{Mode, Record, Step};

/// What was read about the pod this round.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts {
    /// The pod has a deletionTimestamp (or is gone): nothing is left to do.
    pub terminating: bool,
    /// The namespace is no longer included by the config: give the pod back.
    pub excluded: bool,
    /// A pod of the same ReplicaSet, created since the drain started, is Ready.
    pub replacement_ready: bool,
    /// A Service that selects the pod uses `pod-template-hash`.
    pub service_selects_hash: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Leave the ReplicaSet (ReplaceFirst) or the Services (the others).
    Start(Mode),
    /// Out of the Services now (the replacement is Ready).
    Isolate,
    /// Delete the pod with its own grace period; `timed_out` past drainTimeoutSeconds.
    Delete {
        timed_out: bool,
    },
    /// Restore labels and ownership, forget the drain.
    Restore,
    Wait,
    Done,
}

pub fn next(
    record: &Record,
    facts: Facts,
    grace: Duration,
    timeout: Duration,
    now: DateTime<Utc>,
) -> Action {
    if facts.terminating {
        return Action::Done;
    }
    if facts.excluded {
        return Action::Restore;
    }
    if now >= record.started + timeout {
        return Action::Delete { timed_out: true };
    }
    let mode = record.mode.unwrap_or(Mode::IsolateOnly);
    match record.step {
        Step::Requested => Action::Start(record.mode(facts.service_selects_hash)),
        Step::Detached if facts.replacement_ready => Action::Isolate,
        Step::Detached => Action::Wait,
        Step::Isolated => {
            let waits_for_replacement = mode == Mode::IsolateFirst && !facts.replacement_ready;
            let since = record.isolated_at.unwrap_or(record.started);
            if waits_for_replacement || now < since + grace {
                Action::Wait
            } else {
                Action::Delete { timed_out: false }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn rs_record(now: DateTime<Utc>) -> Record {
        let labels = BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("pod-template-hash".to_string(), "abc".to_string()),
        ]);
        let owner = OwnerReference {
            kind: "ReplicaSet".into(),
            controller: Some(true),
            ..Default::default()
        };
        Record::new(now, "vpa", None, labels, vec![owner])
    }

    /// With grace 30 s and timeout 300 s: `Wait` a second before `at`, `then` at `at`.
    fn waits_until(r: &Record, f: Facts, at: DateTime<Utc>, then: Action) {
        let (grace, timeout) = (Duration::seconds(30), Duration::seconds(300));
        let before = at - Duration::seconds(1);
        assert_eq!(
            next(r, f, grace, timeout, before),
            Action::Wait,
            "at {before}"
        );
        assert_eq!(next(r, f, grace, timeout, at), then, "at {at}");
    }

    #[test]
    fn replace_first_then_isolate_then_grace_then_delete() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (grace, timeout) = (Duration::seconds(30), Duration::seconds(300));
        let mut r = rs_record(t0);
        let f = Facts::default();
        assert_eq!(
            next(&r, f, grace, timeout, t0),
            Action::Start(Mode::ReplaceFirst)
        );
        r.start_patch(Mode::ReplaceFirst, t0, None);
        assert_eq!(
            next(&r, f, grace, timeout, t0),
            Action::Wait,
            "no replacement yet"
        );
        let ready = Facts {
            replacement_ready: true,
            ..f
        };
        assert_eq!(next(&r, ready, grace, timeout, t0), Action::Isolate);
        let t1 = t0 + Duration::seconds(3);
        r.isolate_patch(t1, None);
        waits_until(&r, ready, t1 + grace, Action::Delete { timed_out: false });
        let gone = Facts {
            terminating: true,
            ..f
        };
        assert_eq!(next(&r, gone, grace, timeout, t1 + grace), Action::Done);
    }

    #[test]
    fn the_fallbacks_wait_as_they_must() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (grace, timeout) = (Duration::seconds(10), Duration::seconds(300));
        let mut r = rs_record(t0);
        let hash = Facts {
            service_selects_hash: true,
            ..Facts::default()
        };
        assert_eq!(
            next(&r, hash, grace, timeout, t0),
            Action::Start(Mode::IsolateFirst)
        );
        r.start_patch(Mode::IsolateFirst, t0, None);
        let late = t0 + Duration::seconds(60);
        assert_eq!(
            next(&r, hash, grace, timeout, late),
            Action::Wait,
            "no replacement Ready"
        );
        let ready = Facts {
            replacement_ready: true,
            ..hash
        };
        assert_eq!(
            next(&r, ready, grace, timeout, late),
            Action::Delete { timed_out: false }
        );

        let mut s = rs_record(t0);
        s.owner_references[0].kind = "StatefulSet".into();
        assert_eq!(
            next(&s, Facts::default(), grace, timeout, t0),
            Action::Start(Mode::IsolateOnly)
        );
        s.start_patch(Mode::IsolateOnly, t0, None);
        assert_eq!(
            next(&s, Facts::default(), grace, timeout, t0 + grace),
            Action::Delete { timed_out: false },
            "a StatefulSet's replacement comes only after the delete"
        );
    }

    #[test]
    fn the_timeout_deletes_and_an_excluded_namespace_restores() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (grace, timeout) = (Duration::seconds(30), Duration::seconds(300));
        let mut r = rs_record(t0);
        r.start_patch(Mode::ReplaceFirst, t0, None);
        let f = Facts::default();
        waits_until(&r, f, t0 + timeout, Action::Delete { timed_out: true });
        let excluded = Facts {
            excluded: true,
            ..f
        };
        assert_eq!(next(&r, excluded, grace, timeout, t0), Action::Restore);
    }
}
