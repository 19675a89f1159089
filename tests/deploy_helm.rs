//! The Helm chart (`deploy/helm/node-drain`) renders what kustomize renders:
//! `helm lint` passes, `helm template` gives the same objects (kinds, names,
//! RBAC rules as data, and the rest but Helm's own labels) as `deploy/` and
//! each overlay, its objects pass restricted Pod Security with no warning, and
//! the common knobs reach the objects.

mod support;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use node_drain::config::DaemonConfig;
use support::deploy::*;
use support::*;

/// Each Helm setting and the kustomization it must equal.
const PAIRS: [(&[&str], &str); 4] = [
    (&[], "deploy"),
    (&["retireNode=true"], "deploy/overlays/retire-node"),
    (&["cronjob.enabled=true"], "deploy/overlays/cronjob"),
    (&["graceful.enabled=true"], "deploy/overlays/graceful"),
];

/// An object as both tools must render it: without the labels only Helm adds,
/// the daemon's config.yaml as data (comments and layout differ).
fn comparable(mut object: Value) -> Value {
    if let Some(labels) = object
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove("app.kubernetes.io/managed-by");
        labels.remove("helm.sh/chart");
    }
    if let Some(config) = object.pointer_mut("/data/config.yaml") {
        let parsed: Value =
            serde_norway::from_str(config.as_str().unwrap_or_default()).expect("config.yaml");
        *config = parsed;
    }
    object
}

fn rendered_pair(
    env: &TestEnv,
    values: &[&str],
    dir: &str,
) -> [BTreeMap<(String, String), Value>; 2] {
    let helm: Vec<Value> = objects(&helm_template(env, values))
        .into_iter()
        .map(comparable)
        .collect();
    let kustomize: Vec<Value> = objects(&kustomize(env, dir))
        .into_iter()
        .map(comparable)
        .collect();
    [by_kind_and_name(&helm), by_kind_and_name(&kustomize)]
}

#[test]
fn helm_lint_passes_for_the_daemon_the_cronjob_and_retire_node() {
    let env = TestEnv::load();
    let chart = chart();
    for values in [
        &[][..],
        &["cronjob.enabled=true"],
        &["retireNode=true"],
        &["graceful.enabled=true"],
    ] {
        let mut args = vec!["lint", "--strict", chart.as_str()];
        for v in values {
            args.extend(["--set", v]);
        }
        succeeded(helm_run(&env, &args), &format!("helm lint {values:?}"));
    }
}

#[test]
fn helm_and_kustomize_render_the_same_kinds_names_and_rbac_rules() {
    let env = TestEnv::load();
    for (values, dir) in PAIRS {
        let [helm, kustomize] = rendered_pair(&env, values, dir);
        assert_eq!(
            helm.keys().collect::<Vec<_>>(),
            kustomize.keys().collect::<Vec<_>>(),
            "the kinds and names of helm {values:?} and {dir}"
        );
        for (kind, name) in [
            ("ClusterRole", "node-drain"),
            ("Role", "node-drain"),
            ("ClusterRole", "node-drain-graceful"),
        ] {
            let key = (kind.to_string(), name.to_string());
            assert_eq!(
                helm.get(&key).map(|r| &r["rules"]),
                kustomize.get(&key).map(|r| &r["rules"]),
                "the {kind} rules of helm {values:?} and {dir}"
            );
        }
    }
    // The retire-node rules are the default's and `nodes delete`.
    let [default, _] = rendered_pair(&env, &[], "deploy");
    let [retire, _] = rendered_pair(&env, &["retireNode=true"], "deploy");
    let key = ("ClusterRole".to_string(), "node-drain".to_string());
    let mut expected = default[&key]["rules"].as_array().expect("rules").clone();
    expected.push(json!({"apiGroups": [""], "resources": ["nodes"], "verbs": ["delete"]}));
    assert_eq!(retire[&key]["rules"], Value::from(expected));
}

#[test]
fn helm_and_kustomize_render_the_same_objects() {
    let env = TestEnv::load();
    for (values, dir) in PAIRS {
        let [helm, kustomize] = rendered_pair(&env, values, dir);
        for (key, object) in &kustomize {
            assert_eq!(
                helm.get(key),
                Some(object),
                "{key:?}: helm {values:?} and {dir} differ"
            );
        }
    }
}

#[test]
fn the_helm_objects_pass_restricted_pod_security_with_no_warnings() {
    let env = TestEnv::load();
    apply_rbac(&env);
    for (values, _) in PAIRS {
        let out = dry_run(&env, &objects(&helm_template(&env, values)));
        let stdout = succeeded(
            out.clone(),
            &format!("helm template {values:?} | kubectl apply --dry-run=server"),
        );
        assert_eq!(
            warnings(&out),
            Vec::<String>::new(),
            "{values:?}:\n{stdout}"
        );
    }
}

#[test]
fn the_chart_values_reach_the_objects() {
    let env = TestEnv::load();
    let rendered = objects(&helm_template(
        &env,
        &[
            "nodepool=pool-a",
            "nodepools={pool-b,pool-c}",
            "prometheus.address=http://mimir.monitoring.svc:8080/prometheus",
            "prometheus.orgId=tenant-1",
            "evictionRate=7",
            "slack.secretName=my-slack",
            "webhook.secretName=my-token",
            "image.repository=my-registry.example/node-drain",
            "image.tag=0.1.0",
            "replicas=3",
            "resources.limits.memory=512Mi",
        ],
    ));
    let deployment = find(&rendered, "Deployment", "node-drain");
    let spec = &deployment["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    let env_of = |name: &str| {
        container["env"]
            .as_array()
            .expect("env")
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(env_of("NODEPOOL_NAME")["value"], "pool-a");
    assert_eq!(
        env_of("PROMETHEUS_ADDRESS")["value"],
        "http://mimir.monitoring.svc:8080/prometheus"
    );
    assert_eq!(env_of("PROMETHEUS_SCOPE_ORG_ID")["value"], "tenant-1");
    assert_eq!(env_of("EVICTION_RATE")["value"], "7");
    assert_eq!(
        env_of("SLACK_WEBHOOK_URL")["valueFrom"]["secretKeyRef"]["name"],
        "my-slack"
    );
    assert_eq!(spec["volumes"][1]["secret"]["secretName"], "my-token");
    assert_eq!(container["image"], "my-registry.example/node-drain:0.1.0");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(container["resources"]["limits"]["memory"], "512Mi");
    let config = str_at(
        find(&rendered, "ConfigMap", "node-drain-serve"),
        "/data/config.yaml",
    );
    let config = DaemonConfig::parse(&config).expect("the daemon reads the chart's config");
    assert_eq!(config.nodepools("pool-a"), ["pool-a", "pool-b", "pool-c"]);
    assert_eq!(config.rules.len(), 3);
}
