//! Presence: every change applied to every planned pod, resumed or listed.

use super::*;
use serde_json::json;

fn pod(uid: &str, version: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("pod-{uid}"), "namespace": "ns", "uid": uid, "resourceVersion": version},
        "spec": {"containers": [{"name": "c", "image": "i"}]}
    }))
    .unwrap()
}

fn set(uids: &[&str]) -> BTreeSet<String> {
    uids.iter().map(|u| u.to_string()).collect()
}

/// Planned: `a` (stateless, waited for now), `s` (stateful, a later tier).
fn resumed() -> Presence {
    let snapshot = BTreeMap::from([
        ("a".to_string(), pod("a", "5")),
        ("s".to_string(), pod("s", "5")),
    ]);
    Presence::resumed(set(&["a", "s"]), &snapshot, "5".into())
}

#[test]
fn a_later_tiers_pod_deleted_while_an_earlier_tier_waits_is_known_gone() {
    let mut p = resumed();
    assert_eq!(
        p.apply(PodChange::Deleted(pod("s", "7"))),
        Applied::Recorded
    );
    assert_eq!(p.gone(), set(&["s"]));
    assert!(!p.all_gone(&set(&["a"])), "the waited-for tier is not done");
    assert!(p.all_gone(&set(&["s"])));
    assert_eq!(p.version(), Some("7"), "the next watch resumes past it");
    assert!(
        !p.snapshot().contains_key("s"),
        "and does not start from it"
    );
}

/// (what, changes, gone, version after)
type Case = (
    &'static str,
    Vec<PodChange>,
    &'static [&'static str],
    Option<&'static str>,
);

#[test]
fn changes_table() {
    let cases: Vec<Case> = vec![
        ("nothing happened", vec![], &[], Some("5")),
        (
            "a pod that was not planned is ignored, its version kept",
            vec![
                PodChange::Applied(pod("x", "6")),
                PodChange::Deleted(pod("x", "7")),
            ],
            &[],
            Some("7"),
        ),
        (
            "terminating, then gone",
            vec![
                PodChange::Applied(pod("a", "6")),
                PodChange::Deleted(pod("a", "8")),
            ],
            &["a"],
            Some("8"),
        ),
        (
            "both tiers gone, in any order",
            vec![
                PodChange::Deleted(pod("s", "6")),
                PodChange::Deleted(pod("a", "9")),
            ],
            &["a", "s"],
            Some("9"),
        ),
        (
            "a bookmark moves the version only",
            vec![PodChange::Version("12".into())],
            &[],
            Some("12"),
        ),
        (
            "a LIST says what is there: what it lacks is gone",
            vec![PodChange::Listed(vec![pod("a", "10"), pod("x", "10")])],
            &["s"],
            Some("5"),
        ),
    ];
    for (what, changes, gone, version) in cases {
        let mut p = resumed();
        for change in changes {
            assert_eq!(p.apply(change), Applied::Recorded, "{what}");
        }
        assert_eq!(p.gone(), set(gone), "{what}");
        assert_eq!(p.version(), version, "{what}");
    }
}

#[test]
fn nothing_is_known_gone_before_the_first_list() {
    let mut p = Presence::unlisted(set(&["a", "s"]));
    assert!(!p.synced());
    assert!(p.gone().is_empty());
    assert!(!p.all_gone(&set(&["a"])));
    p.apply(PodChange::Deleted(pod("a", "6")));
    assert!(p.gone().is_empty(), "still unlisted");
    p.apply(PodChange::Listed(vec![pod("s", "6")]));
    assert!(p.synced());
    assert_eq!(p.gone(), set(&["a"]));
    assert!(p.all_gone(&set(&["a"])));
    assert_eq!(p.present_among(&set(&["a", "s"])).len(), 1);
}

#[test]
fn pods_known_gone_before_it_began_are_not_planned_again() {
    // `s` was already recorded gone: the caller plans only `a`.
    let snapshot = BTreeMap::from([("a".to_string(), pod("a", "5"))]);
    let mut p = Presence::resumed(set(&["a"]), &snapshot, "5".into());
    p.apply(PodChange::Applied(pod("s", "6")));
    assert!(p.present_among(&set(&["s"])).is_empty());
}

#[test]
fn expiry_and_errors_are_reported() {
    let mut p = resumed();
    assert_eq!(p.apply(PodChange::Expired), Applied::Expired);
    assert_eq!(p.version(), None, "a version too old is not resumed from");
    assert_eq!(
        p.apply(PodChange::Error("boom".into())),
        Applied::Error("boom".into())
    );
}
