use super::*;

fn at(minute: u32) -> DateTime<Utc> {
    format!("2026-11-29T10:{minute:02}:00Z").parse().unwrap()
}

fn pool(nodes: &[(&str, u32)]) -> Vec<PoolNode> {
    nodes
        .iter()
        .map(|(name, minute)| PoolNode {
            name: name.to_string(),
            created: at(*minute),
        })
        .collect()
}

fn candidate(node: &str, minute: u32, skipped: Option<SkipReason>) -> Candidate {
    Candidate {
        node: node.into(),
        created: at(minute),
        chosen: skipped.is_none(),
        skipped,
        hosts_self: false,
    }
}

fn record() -> RotationRecord {
    RotationRecord::new("r1".into(), at(30))
}

#[test]
fn remaining_is_the_nodes_older_than_the_cutoff_not_yet_settled_oldest_first() {
    let mut r = record();
    r.replace("a");
    r.skip([SkippedNode {
        node: "b".into(),
        reason: "blocked".into(),
    }]);
    let nodes = pool(&[
        ("d", 20),
        ("a", 1),
        ("b", 2),
        ("c", 3),
        ("new", 31),
        ("edge", 30),
    ]);
    assert_eq!(r.remaining(&nodes), vec!["c", "d", "edge"]);
}

#[test]
fn a_wave_takes_only_nodes_still_to_replace_up_to_the_wave_size() {
    let r = record();
    let candidates = vec![
        candidate("a", 1, None),
        candidate("b", 2, None),
        candidate("c", 3, None),
        candidate("new", 40, None),
    ];
    let remaining = vec!["b".to_string(), "c".to_string()];
    let choice = r.choose_wave(&candidates, &remaining, 5);
    assert_eq!(choice.drain, vec!["b", "c"]);
    assert!(choice.skip.is_empty());
    let choice = r.choose_wave(&candidates, &remaining, 1);
    assert_eq!(choice.drain, vec!["b"]);
}

#[test]
fn lasting_skips_are_skipped_for_good_and_passing_ones_wait() {
    let r = record();
    let candidates = vec![
        candidate(
            "blocked",
            1,
            Some(SkipReason::BlockingPods {
                pods: vec!["ns/bare (no controller)".into()],
            }),
        ),
        candidate("pinned", 2, Some(SkipReason::DoNotDisrupt)),
        candidate("deleting", 3, Some(SkipReason::Deleting)),
        candidate("busy", 4, Some(SkipReason::AlreadyDraining)),
        candidate("ok", 5, None),
    ];
    let remaining: Vec<String> = ["blocked", "pinned", "deleting", "busy", "ok"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let choice = r.choose_wave(&candidates, &remaining, 2);
    assert_eq!(choice.drain, vec!["ok"]);
    let skipped: Vec<&str> = choice.skip.iter().map(|s| s.node.as_str()).collect();
    assert_eq!(skipped, vec!["blocked", "pinned"]);
    assert!(choice.skip[0].reason.contains("ns/bare"));
}

#[test]
fn a_node_is_settled_once_never_twice() {
    let mut r = record();
    r.replace("a");
    r.replace("a");
    r.skip([SkippedNode {
        node: "a".into(),
        reason: "x".into(),
    }]);
    assert_eq!(r.replaced, vec!["a"]);
    assert!(r.skipped.is_empty());
}

#[test]
fn expected_waves_round_up_and_none_when_no_wave_fits() {
    assert_eq!(expected_waves(6, 2), Some(3));
    assert_eq!(expected_waves(5, 2), Some(3));
    assert_eq!(expected_waves(0, 0), Some(0));
    assert_eq!(expected_waves(3, 0), None);
}

#[test]
fn the_wave_estimate_is_the_mean_of_the_waves_done() {
    let mut r = record();
    assert_eq!(r.wave_estimate(), DEFAULT_WAVE_ESTIMATE);
    for seconds in [30.0, 50.0] {
        r.waves.push(WaveRecord {
            nodes: vec![],
            seconds,
            capacity: CapacityOutcome::NotNeeded,
        });
    }
    assert_eq!(r.wave_estimate(), Duration::from_secs(40));
}

#[test]
fn the_record_round_trips_through_the_annotation_json() {
    let mut r = record();
    r.replace("a");
    r.waves.push(WaveRecord {
        nodes: vec!["a".into()],
        seconds: 12.5,
        capacity: CapacityOutcome::Reserved { placeholders: 3 },
    });
    let text = serde_json::to_string(&r).unwrap();
    assert!(
        text.contains("\"cutoff\":\"2026-11-29T10:30:00Z\""),
        "{text}"
    );
    let back: RotationRecord = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
}

#[test]
fn the_summary_names_every_replaced_and_skipped_node_and_the_fallback() {
    let mut r = record();
    r.replace("a");
    r.skip([SkippedNode {
        node: "b".into(),
        reason: "holds blocking pods: ns/bare".into(),
    }]);
    r.capacity_fallback = Some("placeholders still Pending after 2m".into());
    let s = r.summary("pool", Duration::from_secs(95), true);
    let text = s.text();
    assert!(
        text.starts_with(
            "Rotation r1 of NodePool pool finished in 95.0s: 1 replaced, 1 skipped, 0 wave(s)"
        ),
        "{text}"
    );
    assert!(text.contains("  a  replaced\n"), "{text}");
    assert!(
        text.contains("  b  SKIPPED: holds blocking pods: ns/bare\n"),
        "{text}"
    );
    assert!(text.contains("fell back to plain waves"), "{text}");
}

#[test]
fn human_durations() {
    assert_eq!(human_duration(Duration::from_secs(45)), "45s");
    assert_eq!(human_duration(Duration::from_secs(200)), "3m20s");
    assert_eq!(human_duration(Duration::from_secs(3720)), "1h02m");
}
