//! Tests of the record on a Node and its patches.
use super::*;

fn at(t: &str) -> DateTime<Utc> {
    t.parse().unwrap()
}

fn record(state: &str, run: &str, beat: Option<&str>) -> Record {
    let mut a = BTreeMap::from([
        (STATE.to_string(), state.to_string()),
        (RUN_ID.to_string(), run.to_string()),
    ]);
    if let Some(b) = beat {
        a.insert(HEARTBEAT.to_string(), b.to_string());
    }
    Record::read(Some(&a))
}

#[test]
fn every_state_written_is_read_back() {
    for phase in [Phase::Cordoned, Phase::Drained, Phase::Restored] {
        assert_eq!(Phase::parse(phase.as_str()), Some(phase));
    }
    assert_eq!(Phase::parse("draining"), Some(Phase::Cordoned));
    assert_eq!(Phase::parse("nonsense"), None);
    assert!(!Record::read(None).in_progress());
}

#[test]
fn ownership_table() {
    let now = at("2026-11-21T12:00:00Z");
    let after = chrono::Duration::seconds(60);
    let fresh = Some("2026-11-21T11:59:30Z");
    let stale = Some("2026-11-21T11:58:00Z");
    let cases = [
        (Record::default(), Ownership::Free),
        (record("restored", "a", fresh), Ownership::Free),
        (record("drained", "b", fresh), Ownership::Free),
        (record("drained", "a", fresh), Ownership::Ours),
        (record("cordoned", "a", stale), Ownership::Ours),
        (
            record("cordoned", "b", fresh),
            Ownership::HeldBy { run: "b".into() },
        ),
        (
            record("cordoned", "b", stale),
            Ownership::Orphaned { run: "b".into() },
        ),
        (
            record("cordoned", "b", None),
            Ownership::Orphaned { run: "b".into() },
        ),
        (
            record("cordoned", "b", Some("garbage")),
            Ownership::Orphaned { run: "b".into() },
        ),
    ];
    for (rec, want) in cases {
        assert_eq!(ownership(&rec, "a", None, now, after), want, "{rec:?}");
    }
    // A run known dead (the fenced previous leader's) is taken at once;
    // any other live run is still left alone.
    let live = record("cordoned", "b", fresh);
    assert_eq!(
        ownership(&live, "a", Some("b"), now, after),
        Ownership::Orphaned { run: "b".into() }
    );
    assert_eq!(
        ownership(&live, "a", Some("c"), now, after),
        Ownership::HeldBy { run: "b".into() }
    );
}

#[test]
fn patches_test_what_they_depend_on() {
    let now = at("2026-11-21T12:00:00Z");
    let settings = RecordedSettings {
        force: false,
        on_timeout: super::super::OnTimeout::Restore,
        drain_timeout_seconds: 600,
        retire: super::super::Retire::None,
    };
    let who = Claimant {
        run_id: "run-1",
        holder: "host",
        lease: Some("ns/node-drain"),
        settings: &settings,
    };
    let claim = claim_patch("42", None, &who, false, now);
    let text = claim.to_string();
    assert!(text.contains(r#""value":"ns/node-drain""#), "{text}");
    let written: BTreeMap<String, String> = claim
        .as_array()
        .unwrap()
        .iter()
        .filter(|op| op["op"] == "add" && op["value"].is_string())
        .map(|op| {
            let key =
                op["path"].as_str().unwrap()["/metadata/annotations/".len()..].replace("~1", "/");
            (key, op["value"].as_str().unwrap().to_string())
        })
        .collect();
    let back = Record::read(Some(&written));
    assert_eq!(back.settings.as_ref(), Some(&settings));
    assert_eq!(back.lease.as_deref(), Some("ns/node-drain"));
    assert_eq!(claim[0]["op"], "test");
    assert_eq!(claim[0]["path"], "/metadata/resourceVersion");
    assert_eq!(claim[1]["path"], "/metadata/annotations");
    assert_eq!(
        claim[2]["path"],
        "/metadata/annotations/node-drain.io~1state"
    );
    assert_eq!(claim[2]["value"], "cordoned");
    let last = claim.as_array().unwrap().last().unwrap();
    assert_eq!(last["path"], "/spec/unschedulable");
    for patch in [
        heartbeat_patch("run-1", now),
        restore_patch("run-1", true, "r"),
        drained_patch("run-1", "nodeclaim/x"),
    ] {
        assert_eq!(patch[0]["op"], "test");
        assert_eq!(
            patch[0]["path"],
            "/metadata/annotations/node-drain.io~1run-id"
        );
        assert_eq!(patch[0]["value"], "run-1");
        // ...and that the drain is still in progress: a restored node
        // refuses every later write of its run.
        assert_eq!(patch[1]["op"], "test");
        assert_eq!(
            patch[1]["path"],
            "/metadata/annotations/node-drain.io~1state"
        );
        assert_eq!(patch[1]["value"], "cordoned");
    }
    let judged = record("cordoned", "b", Some("2026-11-21T11:58:00Z"));
    let orphan = orphan_restore_patch(&judged, "7", true, "gone");
    let tests: Vec<_> = orphan
        .as_array()
        .unwrap()
        .iter()
        .filter(|op| op["op"] == "test")
        .map(|op| (op["path"].as_str().unwrap(), op["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        tests,
        [
            ("/metadata/annotations/node-drain.io~1run-id", "b"),
            ("/metadata/annotations/node-drain.io~1state", "cordoned"),
            (
                "/metadata/annotations/node-drain.io~1heartbeat",
                "2026-11-21T11:58:00Z"
            ),
        ]
    );
    let no_beat = orphan_restore_patch(&record("cordoned", "b", None), "7", false, "x");
    assert_eq!(no_beat[2]["path"], "/metadata/resourceVersion");
    assert_eq!(no_beat[2]["value"], "7");
    let keep = restore_patch("run-1", false, "r");
    assert!(!keep.to_string().contains("unschedulable"));
}

#[test]
fn the_claim_removes_a_queued_record_and_only_then() {
    let settings = RecordedSettings {
        force: false,
        on_timeout: super::super::OnTimeout::Restore,
        drain_timeout_seconds: 600,
        retire: super::super::Retire::None,
    };
    let who = Claimant {
        run_id: "run-1",
        holder: "host",
        lease: None,
        settings: &settings,
    };
    let now = at("2026-11-29T10:00:00Z");
    let removes = |p: &Value| {
        p.as_array().unwrap().iter().any(|op| {
            op["op"] == "remove" && op["path"] == "/metadata/annotations/node-drain.io~1queued"
        })
    };
    let queued = BTreeMap::from([(QUEUED.to_string(), "{}".to_string())]);
    assert!(removes(&claim_patch("1", Some(&queued), &who, false, now)));
    let other = BTreeMap::from([(STATE.to_string(), "restored".to_string())]);
    assert!(!removes(&claim_patch("1", Some(&other), &who, false, now)));
    assert!(!removes(&claim_patch("1", None, &who, false, now)));
    let unqueue = unqueue_patch("v");
    assert_eq!(unqueue[0]["op"], "test");
    assert_eq!(unqueue[0]["value"], "v");
    assert_eq!(queued_patch("v")["metadata"]["annotations"][QUEUED], "v");
}
