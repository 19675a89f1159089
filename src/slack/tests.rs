//! Tests of the Slack messages and the answer policy.
use super::*;

#[test]
fn verdicts() {
    assert_eq!(slack_verdict(200, "ok", None, 0), SlackVerdict::Delivered);
    assert_eq!(
        slack_verdict(429, "", Some("3"), 0),
        SlackVerdict::Retry {
            after: Duration::from_secs(3)
        }
    );
    assert_eq!(
        slack_verdict(429, "", None, 0),
        SlackVerdict::Retry {
            after: Duration::from_secs(1)
        }
    );
    assert_eq!(
        slack_verdict(500, "rollup_error", None, 0),
        SlackVerdict::Retry {
            after: Duration::from_millis(500)
        }
    );
    assert_eq!(
        slack_verdict(503, "", None, 2),
        SlackVerdict::Retry {
            after: Duration::from_millis(2000)
        }
    );
    for (status, body) in [
        (400, "invalid_payload"),
        (403, "action_prohibited"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
    ] {
        assert_eq!(
            slack_verdict(status, body, None, 0),
            SlackVerdict::Refused {
                status,
                error: body.into()
            }
        );
    }
    assert_eq!(
        slack_verdict(400, r#"{"ok":false,"error":"invalid_blocks"}"#, None, 0),
        SlackVerdict::Refused {
            status: 400,
            error: "invalid_blocks".into()
        }
    );
}

#[test]
fn the_webhook_url_never_prints() {
    let url = WebhookUrl::parse("https://hooks.example/services/T000/B000/SECRETTOKEN")
        .unwrap()
        .unwrap();
    assert!(!format!("{url:?} {url}").contains("SECRETTOKEN"));
    assert_eq!(WebhookUrl::parse("").unwrap(), None);
    let err = WebhookUrl::parse("not a url SECRETTOKEN").unwrap_err();
    assert!(!err.contains("SECRETTOKEN"), "{err}");
}

#[test]
fn long_lists_stay_within_slack_limits() {
    let blockers: Vec<String> = (0..2000)
        .map(|i| {
            format!("namespace-{i}/pod-with-a-rather-long-name-{i} (PodDisruptionBudget pdb-{i})")
        })
        .collect();
    let p = payload(&Notice::NodeFailed {
        cluster: "c".into(),
        node: "n".into(),
        reason: "timeout".into(),
        blockers,
    });
    let blocks = p["blocks"].as_array().unwrap();
    assert!(blocks.len() <= MAX_BLOCKS);
    for b in blocks {
        if let Some(t) = b["text"]["text"].as_str() {
            assert!(
                t.chars().count() <= MAX_SECTION_CHARS,
                "section of {} chars",
                t.chars().count()
            );
        }
    }
    let last = blocks.last().unwrap()["text"]["text"].as_str().unwrap();
    assert!(last.contains("…and ") && last.contains(" more"), "{last}");
    assert!(p["text"].as_str().unwrap().contains("n NOT drained"));

    let nodes: Vec<String> = (0..500).map(|i| format!("node-{i}")).collect();
    let finished = payload(&Notice::RunFinished {
        cluster: "c".into(),
        nodepool: "p".into(),
        run_id: "r".into(),
        duration: Duration::from_secs(5),
        pods_evicted: 1,
        pods_force_deleted: 0,
        retired: nodes.clone(),
        failed: nodes,
    });
    assert!(finished["blocks"].as_array().unwrap().len() <= MAX_BLOCKS);
    let header_text = payload(&Notice::RunStarted {
        cluster: "x".repeat(400),
        nodepool: "p".into(),
        nodes: vec![],
        run_id: "r".into(),
        trigger: "t".into(),
    });
    assert!(
        header_text["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .chars()
            .count()
            <= MAX_HEADER_CHARS
    );
}

#[test]
fn messages_carry_what_the_sre_needs() {
    let started = payload(&Notice::RunStarted {
        cluster: "devel_eks_cluster".into(),
        nodepool: "worker".into(),
        nodes: vec!["a".into(), "b".into()],
        run_id: "r1".into(),
        trigger: "alert NodeDiskPressure node=a".into(),
    });
    assert!(started
        .to_string()
        .contains("Triggered by: alert NodeDiskPressure node=a"));
    assert_eq!(
        started["text"],
        "[devel_eks_cluster] node-drain started: 2 node(s) of NodePool worker"
    );
    let rates = payload(&Notice::AllocateRates {
        cluster: "".into(),
        nodepool: "worker".into(),
        memory_percent: 22,
        cpu_percent: 63,
        max_percent: 63,
        len_nodes: 8,
        drain_rate: 0.36,
        wave_size: 2,
        limited_by: vec![],
    });
    assert!(rates["blocks"][1]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("*CPU* 63 %"));
    assert!(rates["blocks"][1]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("8 nodes × drainRate 0.36 → 2 node(s)"));
}

#[test]
fn a_blocked_node_names_its_blockers_and_that_nothing_changed() {
    let p = payload(&Notice::NodeBlocked {
        cluster: "prod".into(),
        node: "n1".into(),
        trigger: "alert NodeDiskPressure node=n1".into(),
        blockers: vec!["team-a/keep-7d9 (karpenter.sh/do-not-disrupt: \"true\")".into()],
    });
    let text = p["text"].as_str().unwrap();
    assert_eq!(
        text,
        "[prod] ⛔ n1 NOT drained: blocked by team-a/keep-7d9 (karpenter.sh/do-not-disrupt: \"true\")"
    );
    let first = p["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        first.contains("alert NodeDiskPressure node=n1") && first.contains("not cordoned"),
        "{first}"
    );
    // Hundreds of blockers stay within Slack's limits.
    let many: Vec<String> = (0..500)
        .map(|i| format!("ns/pod-{i} (no controller)"))
        .collect();
    let p = payload(&Notice::NodeBlocked {
        cluster: String::new(),
        node: "n1".into(),
        trigger: "admin".into(),
        blockers: many,
    });
    assert!(p["text"].as_str().unwrap().chars().count() <= MAX_SECTION_CHARS);
    assert!(p["blocks"].as_array().unwrap().len() <= MAX_BLOCKS);
}
