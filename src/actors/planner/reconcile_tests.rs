//! The reconciliation's shortcut (`recover_io` reads a node in full only
//! when recovery would act on it taken as cordoned), checked against the policy.

use std::collections::BTreeMap;

use crate::drain::annotations::{Record, HEARTBEAT, LEASE, RETIREMENT, RUN_ID, STATE};
use crate::drain::recovery::{recovery, NodeState, Recoverer, Recovery};

/// `recover_io` reads a node in full only when recovery, taking the node
/// as cordoned, would act: sound only while an uncordoned node never asks
/// for more than a cordoned one. Every record shape, state and recoverer.
#[test]
fn a_node_left_alone_taken_as_cordoned_is_left_alone_uncordoned() {
    let now: chrono::DateTime<chrono::Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
    let after = chrono::Duration::seconds(60);
    let mut records = vec![Record::read(None)];
    for state in ["cordoned", "drained", "restored"] {
        for heartbeat in [
            None,
            Some("2026-11-21T11:59:50Z"),
            Some("2026-11-21T11:50:00Z"),
        ] {
            for lease in [None, Some("ns/nd"), Some("ns/other")] {
                for retirement in [None, Some("nodeclaim/c1"), Some("node"), Some("none")] {
                    let mut a = BTreeMap::from([(STATE.to_string(), state.to_string())]);
                    a.insert(RUN_ID.into(), "r".into());
                    let optional = [
                        (HEARTBEAT, heartbeat),
                        (LEASE, lease),
                        (RETIREMENT, retirement),
                    ];
                    for (key, value) in optional {
                        if let Some(v) = value {
                            a.insert(key.into(), v.into());
                        }
                    }
                    records.push(Record::read(Some(&a)));
                }
            }
        }
    }
    let recoverers = [
        Recoverer::Cli,
        Recoverer::Leader {
            lease: "ns/nd",
            elected_now: false,
        },
        Recoverer::Leader {
            lease: "ns/nd",
            elected_now: true,
        },
    ];
    let mut acted = 0;
    for record in &records {
        for who in recoverers {
            for (deleting, managed) in [(false, false), (false, true), (true, false), (true, true)]
            {
                let state = |unschedulable| NodeState {
                    unschedulable,
                    deleting,
                    managed,
                };
                let cordoned = recovery(record, state(true), who, now, after);
                let uncordoned = recovery(record, state(false), who, now, after);
                if cordoned == Recovery::Leave {
                    assert_eq!(
                        uncordoned,
                        Recovery::Leave,
                        "{record:?} {who:?} {deleting} {managed}"
                    );
                } else {
                    acted += 1;
                }
            }
        }
    }
    assert!(acted > 0, "the table never acts: it proves nothing");
}
