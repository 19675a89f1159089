//! The one recovery policy: what a process does with a node an earlier run
//! left, read from the node's record. The CLI and the daemon ask the same
//! question and differ only in what they do with a drain whose run died: the
//! CLI gives the node back (restore), the daemon's leader finishes the drain
//! (resume). Both finish a retirement that was recorded but may not have
//! happened, and both leave a node a person has uncordoned since.

use chrono::{DateTime, Utc};

use super::annotations::{Record, RecordedSettings};
use super::Phase;

/// Who recovers, and so what a dead run's drain becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recoverer<'a> {
    /// A one-shot CLI run: a dead run's node is restored before planning.
    Cli,
    /// The daemon's leader of `lease` (`namespace/name`): a dead run's node is
    /// drained to its end. `elected_now`: the first reconciliation after the
    /// election, when every node recorded under this Lease belongs to a
    /// predecessor whose fence has closed, whatever its heartbeat says.
    Leader { lease: &'a str, elected_now: bool },
}

/// What the node's record and state ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing to do: no record, a live run holds it, finished, or deleting.
    Leave,
    /// Give the node back (uncordon if node-drain cordoned it), with why.
    Restore { reason: String },
    /// Drain it to its end under a new run, as the dead run was asked to.
    Resume {
        dead_run: String,
        settings: Option<RecordedSettings>,
        why: String,
    },
    /// Drained, and its recorded retirement may not have happened: do it.
    Retire { retirement: Retirement },
}

/// A retirement as recorded (`node-drain.io/retirement`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retirement {
    NodeClaim(String),
    Node,
}

impl Retirement {
    /// None for `none…` (left cordoned by request, or no NodeClaim found).
    pub fn parse(recorded: &str) -> Option<Self> {
        match recorded.split_once('/') {
            Some(("nodeclaim", name)) if !name.is_empty() => {
                Some(Retirement::NodeClaim(name.into()))
            }
            _ if recorded == "node" => Some(Retirement::Node),
            _ => None,
        }
    }
}

/// The node's state that matters besides its record.
#[derive(Debug, Clone, Copy)]
pub struct NodeState {
    pub unschedulable: bool,
    pub deleting: bool,
    /// In a NodePool the recoverer manages now. A daemon whose config no
    /// longer names the node's NodePool gives back only what it claimed itself.
    pub managed: bool,
}

pub fn recovery(
    record: &Record,
    node: NodeState,
    who: Recoverer<'_>,
    now: DateTime<Utc>,
    orphan_after: chrono::Duration,
) -> Recovery {
    if node.deleting {
        return Recovery::Leave;
    }
    let run = record.run_id.clone().unwrap_or_default();
    let under_own_lease =
        matches!(who, Recoverer::Leader { lease, .. } if record.lease.as_deref() == Some(lease));
    match record.phase {
        Some(Phase::Cordoned) => {
            let stale = record.orphaned(now, orphan_after);
            let predecessor = under_own_lease
                && matches!(
                    who,
                    Recoverer::Leader {
                        elected_now: true,
                        ..
                    }
                );
            if !(stale || predecessor) || !(node.managed || under_own_lease) {
                return Recovery::Leave;
            }
            let beat = record
                .heartbeat
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "never".into());
            let why = if stale {
                format!("run {run} stopped mid-drain (last heartbeat {beat})")
            } else {
                format!("run {run} of the previous leader (its lease lapsed)")
            };
            match who {
                Recoverer::Cli => Recovery::Restore { reason: why },
                // Its NodePool was removed from the config: given back, not drained.
                Recoverer::Leader { .. } if !node.managed => Recovery::Restore {
                    reason: format!("{why}; its NodePool is no longer managed"),
                },
                Recoverer::Leader { .. } => Recovery::Resume {
                    dead_run: run,
                    settings: record.settings.clone(),
                    why,
                },
            }
        }
        // Uncordoned since it was drained: a person took it back. And a
        // leader between elections finishes only its own runs' retirements.
        Some(Phase::Drained)
            if !node.unschedulable
                || !node.managed
                || matches!(
                    who,
                    Recoverer::Leader {
                        elected_now: false,
                        ..
                    }
                ) =>
        {
            Recovery::Leave
        }
        Some(Phase::Drained) => match record.retirement.as_deref().and_then(Retirement::parse) {
            Some(retirement) => Recovery::Retire { retirement },
            None => Recovery::Leave,
        },
        Some(Phase::Restored) | None => Recovery::Leave,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drain::annotations::{HEARTBEAT, LEASE, RETIREMENT, RUN_ID, STATE};
    use std::collections::BTreeMap;

    fn record(pairs: &[(&str, &str)]) -> Record {
        let a: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Record::read(Some(&a))
    }

    const CORDONED: NodeState = NodeState {
        unschedulable: true,
        deleting: false,
        managed: true,
    };
    const UNMANAGED: NodeState = NodeState {
        unschedulable: true,
        deleting: false,
        managed: false,
    };

    #[test]
    fn the_policy_table() {
        let now: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
        let after = chrono::Duration::seconds(60);
        let fresh = "2026-11-21T11:59:50Z";
        let stale = "2026-11-21T11:50:00Z";
        let cli = Recoverer::Cli;
        let leader = Recoverer::Leader {
            lease: "ns/nd",
            elected_now: false,
        };
        let elected = Recoverer::Leader {
            lease: "ns/nd",
            elected_now: true,
        };
        let live = record(&[
            (STATE, "cordoned"),
            (RUN_ID, "r"),
            (HEARTBEAT, fresh),
            (LEASE, "ns/nd"),
        ]);
        let dead = record(&[(STATE, "cordoned"), (RUN_ID, "r"), (HEARTBEAT, stale)]);
        let by_cli = record(&[(STATE, "cordoned"), (RUN_ID, "r"), (HEARTBEAT, fresh)]);
        let other_lease = record(&[
            (STATE, "cordoned"),
            (RUN_ID, "r"),
            (HEARTBEAT, fresh),
            (LEASE, "ns/other"),
        ]);
        let drained = |r: &str| record(&[(STATE, "drained"), (RUN_ID, "r"), (RETIREMENT, r)]);
        let kind = |r: Recovery| match r {
            Recovery::Leave => "leave",
            Recovery::Restore { .. } => "restore",
            Recovery::Resume { .. } => "resume",
            Recovery::Retire { .. } => "retire",
        };
        let uncordoned = NodeState {
            unschedulable: false,
            deleting: false,
            managed: true,
        };
        let deleting = NodeState {
            unschedulable: true,
            deleting: true,
            managed: true,
        };
        let stale_own = record(&[
            (STATE, "cordoned"),
            (RUN_ID, "r"),
            (HEARTBEAT, stale),
            (LEASE, "ns/nd"),
        ]);
        let cases = [
            (&live, CORDONED, cli, "leave"),
            (&live, CORDONED, leader, "leave"),
            (&live, CORDONED, elected, "resume"),
            (&by_cli, CORDONED, elected, "leave"),
            (&other_lease, CORDONED, elected, "leave"),
            (&dead, CORDONED, cli, "restore"),
            (&dead, CORDONED, leader, "resume"),
            (&dead, deleting, leader, "leave"),
            (&drained("nodeclaim/x"), CORDONED, cli, "retire"),
            (&drained("nodeclaim/x"), CORDONED, elected, "retire"),
            (&drained("nodeclaim/x"), CORDONED, leader, "leave"),
            (&drained("node"), CORDONED, cli, "retire"),
            (&drained("nodeclaim/x"), uncordoned, cli, "leave"),
            (&drained("none"), CORDONED, elected, "leave"),
            (&drained("none: no NodeClaim"), CORDONED, cli, "leave"),
            (
                &record(&[(STATE, "restored"), (RUN_ID, "r")]),
                CORDONED,
                cli,
                "leave",
            ),
            (&Record::default(), CORDONED, elected, "leave"),
            // A NodePool removed from the config: what this Lease's leaders
            // claimed there is given back; nothing else there is touched.
            (&live, UNMANAGED, elected, "restore"),
            (&live, UNMANAGED, leader, "leave"),
            (&stale_own, UNMANAGED, leader, "restore"),
            (&dead, UNMANAGED, leader, "leave"),
            (&other_lease, UNMANAGED, elected, "leave"),
            (&drained("nodeclaim/x"), UNMANAGED, elected, "leave"),
        ];
        for (i, (rec, node, who, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                kind(recovery(rec, node, who, now, after)),
                want,
                "case {i}: {rec:?} {who:?}"
            );
        }
        assert_eq!(
            recovery(&drained("nodeclaim/x"), CORDONED, cli, now, after),
            Recovery::Retire {
                retirement: Retirement::NodeClaim("x".into())
            }
        );
    }
}
