//! Tests of the queued record: its form, its order, its fate at a new leader.
use super::*;
use crate::drain::{OnTimeout, Retire};

fn settings() -> RecordedSettings {
    RecordedSettings {
        force: false,
        on_timeout: OnTimeout::Restore,
        drain_timeout_seconds: 180,
        retire: Retire::None,
    }
}

fn record(at: &str) -> QueuedRecord {
    QueuedRecord::new(
        Action::DrainNode,
        "alert NodeDiskPressure node=a",
        at.parse().unwrap(),
        "node-drain-0",
        "ops/node-drain",
        settings(),
    )
}

fn found(node: &str, at: &str) -> Found {
    let record = record(at);
    Found {
        node: node.into(),
        raw: record.to_value(),
        record,
    }
}

const LIVE: NodeState = NodeState {
    deleting: false,
    managed: true,
};

#[test]
fn a_record_is_read_back_as_written() {
    let r = record("2026-11-29T10:00:00.000000123Z");
    let raw = r.to_value();
    assert_eq!(QueuedRecord::parse(&raw), Some(r.clone()));
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["action"], "drain-node");
    assert_eq!(v["queuedAt"], "2026-11-29T10:00:00.000000123Z");
    assert_eq!(v["lease"], "ops/node-drain");
    assert_eq!(v["settings"]["retire"], "none");
    assert_eq!(QueuedRecord::parse("{not json"), None);
}

#[test]
fn a_long_trigger_is_cut() {
    let r = QueuedRecord::new(
        Action::DrainNode,
        &"x".repeat(2000),
        Utc::now(),
        "h",
        "l",
        settings(),
    );
    assert_eq!(r.trigger.len(), 500);
}

#[test]
fn records_are_readmitted_oldest_first() {
    let mut all = vec![
        found("c", "2026-11-29T10:00:02Z"),
        found("b", "2026-11-29T10:00:00.5Z"),
        found("z", "2026-11-29T10:00:00.000000001Z"),
        found("a", "2026-11-29T10:00:00.5Z"),
    ];
    all.push(Found {
        node: "0-unreadable-time".into(),
        raw: String::new(),
        record: QueuedRecord {
            queued_at: "yesterday".into(),
            ..record("2026-11-29T10:00:00Z")
        },
    });
    order(&mut all);
    let nodes: Vec<_> = all.iter().map(|f| f.node.as_str()).collect();
    assert_eq!(nodes, ["z", "a", "b", "c", "0-unreadable-time"]);
}

#[test]
fn the_fate_of_a_record() {
    let raw = record("2026-11-29T10:00:00Z").to_value();
    assert_eq!(
        fate(&raw, "ops/node-drain", LIVE),
        Fate::Readmit(record("2026-11-29T10:00:00Z"))
    );
    assert_eq!(fate(&raw, "other/lease", LIVE), Fate::Leave);
    let deleting = NodeState {
        deleting: true,
        ..LIVE
    };
    assert!(
        matches!(fate(&raw, "ops/node-drain", deleting), Fate::Remove { why } if why.contains("deleted"))
    );
    let unmanaged = NodeState {
        managed: false,
        ..LIVE
    };
    assert!(
        matches!(fate(&raw, "ops/node-drain", unmanaged), Fate::Remove { why } if why.contains("no longer managed"))
    );
    assert!(
        matches!(fate("garbage", "ops/node-drain", LIVE), Fate::Remove { why } if why.contains("unreadable"))
    );
}
