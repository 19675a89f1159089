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
    let hostnames = vec!["old-a".to_string(), "old-b".to_string()];
    let spec = PlaceholderSpec {
        nodepool: "pool",
        run_id: "run-1",
        namespace: "ns",
        image: "pause:3.10",
        avoid_hostnames: &hostnames,
    };
    let requests = BTreeMap::from([("cpu".to_string(), 1.5), ("memory".to_string(), 1e9)]);
    let p = serde_json::to_value(placeholder_pod(&spec, &requests)).unwrap();
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
        json!({"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["old-a", "old-b"]})
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
