use super::*;
use serde_json::json;

fn pod(index: &str, created: &str, node: Option<&str>, extra: serde_json::Value) -> Pod {
    let mut value = json!({
        "metadata": {
            "name": format!("p{index}-{created}"),
            "creationTimestamp": created,
            "labels": {PLACEHOLDER_INDEX_LABEL: index},
        },
        "spec": {"containers": [], "nodeName": node},
        "status": {"phase": if node.is_some() { "Running" } else { "Pending" }},
    });
    merge(&mut value, extra);
    serde_json::from_value(value).unwrap()
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

fn node(name: &str, extra: serde_json::Value) -> (String, Node) {
    let mut value = json!({
        "metadata": {"name": name},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    });
    merge(&mut value, extra);
    (name.to_string(), serde_json::from_value(value).unwrap())
}

const T0: &str = "2026-11-29T11:25:58Z";
const T1: &str = "2026-11-29T11:26:08Z";

#[test]
fn each_index_counts_its_newest_live_pod() {
    let listed = vec![
        pod("0", T0, Some("a"), json!({})),
        // created again: the old one is being deleted, the new one counts
        pod(
            "1",
            T0,
            None,
            json!({"metadata": {"deletionTimestamp": T1}}),
        ),
        pod("1", T1, None, json!({})),
        // a finished pod is no placeholder any more
        pod("2", T0, Some("c"), json!({"status": {"phase": "Failed"}})),
        // an index beyond the wave (a leftover) is ignored
        pod("7", T0, None, json!({})),
    ];
    let live = live_by_index(&listed, 3);
    assert_eq!(
        live[0].and_then(|p| p.metadata.name.clone()),
        Some(format!("p0-{T0}"))
    );
    assert_eq!(
        live[1].and_then(|p| p.metadata.name.clone()),
        Some(format!("p1-{T1}"))
    );
    assert!(live[2].is_none());
}

#[test]
fn a_placeholder_stands_on_a_ready_node_or_is_stuck_and_says_why() {
    let nodes: BTreeMap<String, Node> = [
        node("ready", json!({})),
        node(
            "notready",
            json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
        ),
        node("cordoned", json!({"spec": {"unschedulable": true}})),
        node(
            "disrupted",
            json!({"spec": {"taints": [{"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}]}}),
        ),
        node("deleting", json!({"metadata": {"deletionTimestamp": T1}})),
    ]
    .into_iter()
    .collect();
    let on = |n: &str| standing(Some(&pod("0", T0, Some(n), json!({}))), &nodes);
    assert_eq!(on("ready"), Standing::OnReadyNode);
    let why = |s: Standing| match s {
        Standing::OnUnusableNode { why, .. } => why,
        other => panic!("{other:?}"),
    };
    assert_eq!(why(on("notready")), "not Ready");
    assert_eq!(why(on("cordoned")), "cordoned");
    assert_eq!(why(on("disrupted")), "tainted karpenter.sh/disrupted");
    assert_eq!(why(on("deleting")), "being deleted");
    assert_eq!(why(on("vanished")), "gone");
    assert_eq!(standing(None, &nodes), Standing::Missing);

    let parked = pod(
        "0",
        T0,
        None,
        json!({"status": {
            "nominatedNodeName": "old-node",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                            "message": "0/16 nodes are available"}],
        }}),
    );
    let s = standing(Some(&parked), &nodes);
    assert_eq!(
        s,
        Standing::Unbound {
            scheduler: Some("0/16 nodes are available".into()),
            nominated: Some("old-node".into()),
        }
    );
    assert_eq!(
        s.describe(),
        "not scheduled, nominated to old-node (scheduler: 0/16 nodes are available)"
    );
}

#[test]
fn a_gone_placeholder_is_created_again_at_once_a_stuck_one_after_a_while() {
    let unbound = Standing::Unbound {
        scheduler: None,
        nominated: None,
    };
    let unusable = Standing::OnUnusableNode {
        node: "n".into(),
        why: "not Ready".into(),
    };
    let cases = [
        (Standing::OnReadyNode, Duration::from_secs(600), false),
        (Standing::Missing, Duration::ZERO, true),
        (unbound.clone(), Duration::from_secs(9), false),
        (unbound, RECREATE_AFTER, true),
        (unusable.clone(), Duration::from_secs(1), false),
        (unusable, RECREATE_AFTER, true),
    ];
    for (standing, stuck_for, want) in cases {
        assert_eq!(
            recreate(&standing, stuck_for),
            want,
            "{standing:?} {stuck_for:?}"
        );
    }
}
