use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::dedupe::Dedupe;
use super::payload::{parse, Status};
use super::rules::{node_of, resolves_by_ip, rule_for, Action, NodeIndex, Rule, Unresolved};

const BODY: &str = r#"{
  "receiver": "node-drain", "status": "firing", "version": "4",
  "groupKey": "{}:{alertname=\"NodeDiskPressure\"}", "truncatedAlerts": 0,
  "notification_reason": "new", "routeLabels": {"a": "b"},
  "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
  "alerts": [{"status": "firing", "labels": {"alertname": "NodeDiskPressure", "instance": "10.0.0.7:9100"},
              "annotations": {}, "startsAt": "2026-11-22T03:00:00.123Z", "endsAt": "0001-01-01T00:00:00Z",
              "generatorURL": "http://prom", "fingerprint": "abc123"}]
}"#;

#[test]
fn a_version_4_body_with_fields_alertmanager_added_later_parses() {
    let m = parse(BODY.as_bytes()).unwrap();
    assert_eq!(m.status, Status::Firing);
    assert_eq!(m.alerts[0].name(), "NodeDiskPressure");
    assert_eq!(m.alerts[0].key().0, "abc123");
}

#[test]
fn a_bad_body_is_refused_naming_the_field() {
    let cases = [
        ("{", "invalid body"),
        (r#"{"version":"4","status":"firing"}"#, "alerts"),
        (
            &BODY.replace(r#""version": "4""#, r#""version": "3""#),
            "field version",
        ),
        (
            &BODY.replace(
                r#""status": "firing", "version""#,
                r#""status": "burning", "version""#,
            ),
            "field status",
        ),
        (
            &BODY.replace("2026-11-22T03:00:00.123Z", "yesterday"),
            "alerts[0].startsAt",
        ),
        (
            &BODY.replace(r#""alertname": "NodeDiskPressure", "#, ""),
            "alerts[0].labels",
        ),
        (r#"{"version":"4","status":"firing","alerts":{}}"#, "alerts"),
    ];
    for (body, field) in cases {
        let err = parse(body.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(field), "{body}: {err} should name {field}");
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn index() -> NodeIndex {
    let mut i = NodeIndex::default();
    for (name, ip) in [
        ("a", "10.0.0.1"),
        ("b", "10.0.0.2"),
        ("c", "10.0.0.9"),
        ("d", "10.0.0.9"),
    ] {
        i.names.insert(name.into());
        i.by_ip.entry(ip.into()).or_default().push(name.into());
    }
    i
}

#[test]
fn the_node_comes_from_the_labels_in_order() {
    let i = index();
    type Case<'a> = (Vec<(&'a str, &'a str)>, Result<&'a str, Unresolved>);
    let cases: Vec<Case> = vec![
        (vec![("node", "a"), ("instance", "10.0.0.2:9100")], Ok("a")),
        (vec![("instance", "b")], Ok("b")),
        (vec![("instance", "10.0.0.2:9100")], Ok("b")),
        (vec![("instance", "10.0.0.1")], Ok("a")),
        (vec![("nodename", "a")], Ok("a")),
        (vec![("kubernetes_node", "b")], Ok("b")),
        (vec![("job", "x")], Err(Unresolved::NoNodeLabel)),
        (
            vec![("node", "zz")],
            Err(Unresolved::UnknownNode {
                label: "node",
                value: "zz".into(),
            }),
        ),
        (
            vec![("instance", "10.0.0.9:9100")],
            Err(Unresolved::AmbiguousIp {
                ip: "10.0.0.9".into(),
                nodes: vec!["c".into(), "d".into()],
            }),
        ),
        // `node` is authoritative: present but unknown, the alert names no
        // node (an `instance` IP reused by another node must not decide).
        (
            vec![("node", "zz"), ("nodename", "b")],
            Err(Unresolved::UnknownNode {
                label: "node",
                value: "zz".into(),
            }),
        ),
        (
            vec![("node", "zz"), ("instance", "10.0.0.2:9100")],
            Err(Unresolved::UnknownNode {
                label: "node",
                value: "zz".into(),
            }),
        ),
        // `instance` as `<node name>:<port>` (a scrape by node name).
        (vec![("instance", "b:9100")], Ok("b")),
        (vec![("instance", "zz"), ("nodename", "b")], Ok("b")),
    ];
    for (l, want) in cases {
        let got = node_of(&labels(&l), &i);
        assert_eq!(got, want.map(String::from), "{l:?}");
    }
}

#[test]
fn only_an_instance_ip_needs_every_node_of_the_cluster() {
    let cases = [
        (labels(&[("instance", "10.0.0.1:9100")]), true),
        (labels(&[("instance", "10.0.0.1")]), true),
        (labels(&[("instance", "[fd00::1]:9100")]), true),
        (labels(&[("instance", "ip-10-0-0-1:9100")]), false),
        (
            labels(&[("node", "a"), ("instance", "10.0.0.1:9100")]),
            false,
        ),
        (labels(&[("node", ""), ("instance", "10.0.0.1:9100")]), true),
        (labels(&[("nodename", "a")]), false),
        (labels(&[]), false),
    ];
    for (l, want) in cases {
        assert_eq!(resolves_by_ip(&l), want, "{l:?}");
    }
}

#[test]
fn the_first_matching_rule_decides() {
    let rules: Vec<Rule> = serde_norway::from_str(
        "- {alertname: NodeDiskPressure, labels: {severity: critical}, action: drain-node}\n\
         - {alertname: NodeDiskPressure, action: cordon}\n",
    )
    .unwrap();
    let mut m = parse(BODY.as_bytes()).unwrap();
    let alert = &mut m.alerts[0];
    assert_eq!(rule_for(&rules, alert).unwrap().action, Action::Cordon);
    alert.labels.insert("severity".into(), "critical".into());
    assert_eq!(rule_for(&rules, alert).unwrap().action, Action::DrainNode);
    alert.labels.insert("alertname".into(), "Other".into());
    assert!(rule_for(&rules, alert).is_none());
}

#[test]
fn a_delivery_is_acted_on_once_and_the_memory_is_bounded() {
    let t0 = Instant::now();
    let when = chrono::Utc::now();
    let mut d = Dedupe::new(Duration::from_secs(60), 3);
    assert!(d.first(("a".into(), when), t0));
    assert!(!d.first(("a".into(), when), t0));
    // A new startsAt is a new firing.
    assert!(d.first(("a".into(), when + chrono::Duration::seconds(1)), t0));
    // Forgotten (not queued): the retry counts.
    d.forget(&("a".into(), when));
    assert!(d.first(("a".into(), when), t0));
    for i in 0..10 {
        d.first((format!("x{i}"), when), t0);
    }
    assert!(d.len() <= 3);
    // Delivered and forgotten again and again (a full queue answering 503 to
    // every retry): the memory stays bounded too.
    let mut d = Dedupe::new(Duration::from_secs(60), 3);
    d.first(("live".into(), when), t0);
    for i in 0..1000 {
        let key = (format!("k{}", i % 7), when);
        d.first(key.clone(), t0);
        d.forget(&key);
    }
    assert!(
        d.remembered() <= 2 * 3,
        "the order queue holds {} entries for a capacity of 3",
        d.remembered()
    );
    // Expired after the ttl.
    let mut d = Dedupe::new(Duration::from_secs(60), 100);
    assert!(d.first(("a".into(), when), t0));
    assert!(d.first(("a".into(), when), t0 + Duration::from_secs(61)));
}

mod properties {
    use proptest::prelude::*;
    use serde_json::json;

    use super::super::payload::parse;
    use crate::config::DaemonConfig;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases()))]

        #[test]
        fn no_body_makes_the_payload_parser_panic(body in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let _ = parse(&body);
        }

        #[test]
        fn payload_shaped_bodies_parse_or_name_a_field(
            version in "[0-9]{0,2}",
            status in "(firing|resolved|[a-z]{0,8})",
            labels in proptest::collection::btree_map("[a-z_]{1,12}", ".{0,20}", 0..6),
            starts in "(2026-11-22T03:00:00Z|[0-9:TZ-]{0,24})",
        ) {
            let body = json!({"version": version, "status": status,
                "alerts": [{"status": status, "labels": labels, "startsAt": starts}]});
            if let Err(e) = parse(body.to_string().as_bytes()) {
                prop_assert!(e.to_string().contains("field") || e.to_string().contains("invalid body"), "{}", e);
            }
        }

        #[test]
        fn no_config_text_makes_the_config_parser_panic(text in ".{0,400}") {
            let _ = DaemonConfig::parse(&text);
        }

        #[test]
        fn rule_shaped_configs_never_panic(
            name in ".{0,20}",
            action in "(drain-node|drain-nodepool|cordon|[a-z-]{0,12})",
            timeout in "[0-9a-z]{0,6}",
        ) {
            let text = format!("rules:\n  - alertname: {name:?}\n    action: {action}\n    drainTimeout: {timeout:?}\n");
            let _ = DaemonConfig::parse(&text);
        }
    }
}
