//! `deploy/`'s configuration as node-drain reads it: the daemon's ConfigMap
//! holds the disk-pressure rules, Secrets are only referenced, the daemon's
//! and the CronJob's ConfigMaps coexist, and the graceful overlay points the
//! admission webhook at the leader's port. The objects and Pod Security:
//! `deploy_manifests.rs`.

mod support;

use serde_json::{json, Value};

use node_drain::config::DaemonConfig;
use support::deploy::*;
use support::manifests::*;
use support::*;

#[test]
fn the_config_map_holds_the_disk_pressure_rules_and_secrets_are_only_referenced() {
    let env = TestEnv::load();
    let rendered = objects(&kustomize(&env, "deploy"));
    let config = str_at(
        find(&rendered, "ConfigMap", "node-drain-serve"),
        "/data/config.yaml",
    );
    let config = DaemonConfig::parse(&config).expect("the daemon reads its ConfigMap");
    // As the daemon read them: name, labels, action, drain timeout.
    let rules: Vec<Value> = config
        .rules
        .iter()
        .map(|r| json!([r.alertname, r.labels, r.action.as_str(), r.drain_timeout]))
        .collect();
    assert_eq!(
        rules,
        [
            json!(["KubeNodePressure", {"condition": "DiskPressure"}, "drain-node", null]),
            json!(["NodeFilesystemAlmostOutOfSpace", {"severity": "critical"}, "drain-node", "15m"]),
            json!(["NodeFilesystemSpaceFillingUp", {"severity": "critical"}, "drain-node", null]),
        ]
    );

    for dir in KUSTOMIZATIONS {
        let rendered = objects(&kustomize(&env, dir));
        assert!(
            rendered.iter().all(|o| str_at(o, "/kind") != "Secret"),
            "{dir} must reference Secrets, never create them"
        );
    }
    let deployment = find(&rendered, "Deployment", "node-drain");
    let token = workload_pod_spec(deployment)["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "token")
        .expect("the token volume");
    assert_eq!(token["secret"]["secretName"], "node-drain-webhook");
    assert_eq!(
        token["secret"]["items"],
        json!([{"key": "token", "path": "token"}])
    );
    let slack = container(deployment)["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "SLACK_WEBHOOK_URL")
        .expect("SLACK_WEBHOOK_URL");
    assert_eq!(
        slack["valueFrom"]["secretKeyRef"],
        json!({"name": "node-drain-slack", "key": "webhook-url", "optional": true})
    );
}

#[test]
fn the_daemon_and_cronjob_config_maps_coexist_and_both_have_a_prometheus_address() {
    let env = TestEnv::load();
    // The daemon no longer defaults to its own port for Prometheus.
    for dir in ["deploy", "deploy/overlays/retire-node"] {
        let rendered = objects(&kustomize(&env, dir));
        let address = env_value(
            find(&rendered, "Deployment", "node-drain"),
            "PROMETHEUS_ADDRESS",
        )
        .unwrap_or_else(|| panic!("{dir}: the Deployment sets PROMETHEUS_ADDRESS"));
        assert!(
            address.starts_with("http") && !address.contains("localhost"),
            "{address}"
        );
    }
    let daemon: Vec<Value> = objects(&kustomize(&env, "deploy"))
        .into_iter()
        .filter(|o| str_at(o, "/kind") == "ConfigMap")
        .collect();
    let rotation: Vec<Value> = objects(&kustomize(&env, "deploy/overlays/cronjob"))
        .into_iter()
        .filter(|o| str_at(o, "/kind") == "ConfigMap")
        .collect();
    let cronjob = find(
        &objects(&kustomize(&env, "deploy/overlays/cronjob")),
        "CronJob",
        "node-drain-rotation",
    )
    .clone();
    assert_eq!(
        str_at(&container(&cronjob)["envFrom"][0], "/configMapRef/name"),
        "node-drain-cronjob"
    );
    assert!(!str_at(&rotation[0], "/data/PROMETHEUS_ADDRESS").is_empty());

    // Applied one after the other, for real: each keeps its own keys.
    apply_rbac(&env);
    let existed: Vec<bool> = ["node-drain-serve", "node-drain-cronjob"]
        .iter()
        .map(|n| {
            kubectl(&env, &["get", "configmap", n, "-n", NAMESPACE])
                .status
                .success()
        })
        .collect();
    let _cleanup = Cleanup {
        env: &env,
        objects: ["node-drain-serve", "node-drain-cronjob"]
            .iter()
            .zip(&existed)
            .filter(|(_, existed)| !**existed)
            .map(|(n, _)| (Some(NAMESPACE), format!("configmap/{n}")))
            .collect(),
    };
    for config_maps in [&daemon, &rotation] {
        succeeded(
            kubectl_with_input(&env, &["apply", "-f", "-"], Some(&to_stdin(config_maps))),
            "apply a ConfigMap",
        );
    }
    for expected in daemon.iter().chain(&rotation) {
        let name = str_at(expected, "/metadata/name");
        let live: Value = serde_json::from_str(&succeeded(
            kubectl(
                &env,
                &["get", "configmap", &name, "-n", NAMESPACE, "-o", "json"],
            ),
            "get a ConfigMap",
        ))
        .expect("a ConfigMap");
        assert_eq!(live["data"], expected["data"], "{name} was overwritten");
    }
}

/// The graceful overlay wires the admission webhook end to end: the flags
/// parse, the certificate names the Service the webhook configuration calls,
/// on the path the daemon serves, on the port the container exposes; the
/// webhook never blocks an eviction (Ignore) and lets dry runs through.
#[test]
fn the_graceful_overlay_points_the_webhook_at_the_leaders_admission_port() {
    let env = TestEnv::load();
    let rendered = objects(&kustomize(&env, "deploy/overlays/graceful"));
    let deployment = find(&rendered, "Deployment", "node-drain");
    let serve = serve_args(deployment);
    assert_eq!(serve.admission.address.as_deref(), Some("0.0.0.0:8443"));
    let webhook = find(
        &rendered,
        "MutatingWebhookConfiguration",
        serve
            .admission
            .webhook_configuration
            .as_deref()
            .expect("--admission-webhook-configuration"),
    );
    let hook = &webhook["webhooks"][0];
    let service_ref = &hook["clientConfig"]["service"];
    assert_eq!(
        service_ref["path"],
        node_drain::ingress::admission::PATH,
        "the path the daemon serves"
    );
    let service = find(
        &rendered,
        "Service",
        service_ref["name"].as_str().expect("a Service"),
    );
    let dns = format!(
        "{}.{}.svc",
        str_at(service, "/metadata/name"),
        str_at(service, "/metadata/namespace")
    );
    assert_eq!(
        str_at(service_ref, "/namespace"),
        str_at(service, "/metadata/namespace")
    );
    assert!(
        serve.admission.dns_names.contains(&dns),
        "{:?}",
        serve.admission.dns_names
    );
    assert_eq!(service["spec"]["ports"][0]["port"], service_ref["port"]);
    let target = &service["spec"]["ports"][0]["targetPort"];
    let exposed = container(deployment)["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| &p["name"] == target)
        .expect("the Service's targetPort is a named container port")
        .clone();
    assert_eq!(exposed["containerPort"], 8443);
    assert_eq!(
        service["spec"]["selector"]["node-drain.io/role"], "leader",
        "only the leader's CA is in the caBundle"
    );
    assert_eq!(hook["failurePolicy"], "Ignore");
    assert_eq!(hook["sideEffects"], "NoneOnDryRun");
    assert_eq!(
        hook["rules"][0],
        json!({"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
               "resources": ["pods/eviction"], "scope": "Namespaced"})
    );
    let policy = find(&rendered, "NetworkPolicy", "node-drain");
    assert!(
        policy["spec"]["ingress"]
            .as_array()
            .expect("ingress")
            .iter()
            .any(|rule| rule.get("from").is_none()
                && rule["ports"] == json!([{"port": 8443, "protocol": "TCP"}])),
        "the API server reaches 8443: {policy}"
    );
}
