use super::*;

fn pod(containers: serde_json::Value, init: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": containers, "initContainers": init}
    }))
    .unwrap()
}

#[test]
fn requests_sum_the_containers_or_take_the_largest_init_container() {
    let p = pod(
        json!([
            {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "250m"}}},
            {"name": "c"}
        ]),
        json!([{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "1Mi"}}}]),
    );
    let r = requests_of(&p);
    assert_eq!(r.get("cpu"), Some(&2.0));
    assert_eq!(r.get("memory"), Some(&(1024.0 * 1024.0 * 1024.0)));
    assert_eq!(r.get("ephemeral-storage"), None);
}

#[test]
fn the_placeholder_is_low_priority_pinned_to_the_pool_and_off_the_wave() {
    let spec = PlaceholderSpec {
        nodepool: "pool",
        run_id: "run-1",
        namespace: "ns",
        image: "pause:3.10",
        avoid_wave: true,
    };
    let requests = BTreeMap::from([("cpu".to_string(), 1.5), ("memory".to_string(), 1e9)]);
    let p =
        serde_json::to_value(placeholder_pod(&spec, &requests, &Constraints::default())).unwrap();
    assert_eq!(p["metadata"]["namespace"], "ns");
    assert_eq!(p["metadata"]["labels"][PLACEHOLDER_LABEL], "pool");
    assert_eq!(p["metadata"]["labels"][PLACEHOLDER_RUN_LABEL], "run-1");
    let s = &p["spec"];
    assert_eq!(s["priorityClassName"], PRIORITY_CLASS);
    assert_eq!(s["terminationGracePeriodSeconds"], 0);
    assert_eq!(s["nodeSelector"]["karpenter.sh/nodepool"], "pool");
    assert_eq!(
        s["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"][0],
        json!({"key": WAVE_LABEL, "operator": "DoesNotExist"})
    );
    assert_eq!(
        s["containers"][0]["resources"]["requests"],
        json!({"cpu": "1500m", "memory": "1000000000"})
    );
}

#[test]
fn the_priority_class_never_preempts_and_is_never_the_default() {
    let pc = serde_json::to_value(priority_class()).unwrap();
    assert_eq!(pc["metadata"]["name"], "node-drain-placeholder");
    assert_eq!(pc["value"], -10);
    assert_eq!(pc["preemptionPolicy"], "Never");
    assert_eq!(pc["globalDefault"], false);
}

#[test]
fn a_spread_pod_gets_placeholders_that_spread_alike_without_its_labels() {
    let original = pod(json!([{"name": "a"}]), json!([]));
    let mut original = original;
    original.metadata.labels = Some(BTreeMap::from([("app".to_string(), "web".to_string())]));
    original.spec.as_mut().unwrap().affinity = serde_json::from_value(json!({"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"spread": "one"}}, "topologyKey": "kubernetes.io/hostname"}
        ]}})).unwrap();
    let spec = PlaceholderSpec {
        nodepool: "pool",
        run_id: "r",
        namespace: "elsewhere",
        image: "pause:3.10",
        avoid_wave: false,
    };
    let c = Constraints::of(&original);
    let a = serde_json::to_value(placeholder_pod(&spec, &BTreeMap::new(), &c)).unwrap();
    let b = serde_json::to_value(placeholder_pod(&spec, &BTreeMap::new(), &c)).unwrap();
    assert_eq!(a["metadata"]["labels"].get("app"), None);
    let group = a["metadata"]["labels"][SPREAD_LABEL].clone();
    assert_eq!(group, b["metadata"]["labels"][SPREAD_LABEL]);
    let terms =
        &a["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    assert_eq!(terms[0]["labelSelector"]["matchLabels"]["spread"], "one");
    assert_eq!(terms[0]["namespaces"], json!(["ns"]));
    assert_eq!(
        terms[1],
        json!({"labelSelector": {"matchLabels": {SPREAD_LABEL: group}}, "topologyKey": "kubernetes.io/hostname"})
    );
}
