//! `deploy/` as the API server and node-drain itself read it: the base and each
//! overlay pass the restricted Pod Security Standard with no warning (server
//! dry run), and the daemon's objects follow the leader-label design (Service on
//! the leader's label, every healthy replica Ready) with args node-drain's own
//! parser reads. Its configuration (ConfigMaps, Secrets, the graceful
//! overlay's webhook): `deploy_manifests_config.rs`. Nothing but the
//! namespace, its RBAC and the ConfigMaps is created for real (the test nodes
//! are KWOK fakes).

mod support;

use serde_json::{json, Value};

use node_drain::drain::Retire;
use support::deploy::*;
use support::manifests::*;
use support::*;

#[test]
fn the_base_and_each_overlay_pass_restricted_pod_security_with_no_warnings() {
    let env = TestEnv::load();
    apply_rbac(&env);
    let labels = succeeded(
        kubectl(&env, &["get", "namespace", NAMESPACE, "-o", "json"]),
        "get the namespace",
    );
    let namespace: Value = serde_json::from_str(&labels).expect("a Namespace");
    assert_eq!(
        str_at(
            &namespace,
            "/metadata/labels/pod-security.kubernetes.io~1enforce"
        ),
        "restricted"
    );
    for dir in KUSTOMIZATIONS {
        let path = repo().join(dir).display().to_string();
        let out = kubectl(&env, &["apply", "--dry-run=server", "-k", &path]);
        let stdout = succeeded(
            out.clone(),
            &format!("kubectl apply --dry-run=server -k {dir}"),
        );
        assert_eq!(warnings(&out), Vec::<String>::new(), "{dir}:\n{stdout}");
    }
    // The check has teeth: the same pods with seccomp unconfined are warned about.
    let unconfined = kustomize(&env, "deploy").replace("RuntimeDefault", "Unconfined");
    let out = dry_run(&env, &objects(&unconfined));
    assert!(
        warnings(&out).iter().any(|w| w.contains("PodSecurity")),
        "Pod Security is enforced in {NAMESPACE}: {}",
        text(&out.stderr)
    );
}

#[test]
fn the_daemon_is_ready_per_replica_and_its_webhook_service_selects_the_leader_label() {
    let env = TestEnv::load();
    let rendered = objects(&kustomize(&env, "deploy"));
    let deployment = find(&rendered, "Deployment", "node-drain");
    let pods =
        json!({"app.kubernetes.io/name": "node-drain", "app.kubernetes.io/component": "daemon"});
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["selector"]["matchLabels"], pods);
    assert_eq!(deployment["spec"]["template"]["metadata"]["labels"], pods);
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"],
        "true"
    );
    // Ready = a healthy replica; the leader is found by its label, not readiness.
    let probe = &container(deployment)["readinessProbe"]["httpGet"];
    assert_eq!(probe["path"], "/readyz/replica");
    assert_eq!(probe["port"], "http");
    assert_eq!(
        container(deployment)["livenessProbe"]["httpGet"]["path"],
        "/healthz"
    );
    let webhook = find(&rendered, "Service", "node-drain");
    assert_eq!(
        webhook["spec"]["selector"],
        json!({"app.kubernetes.io/name": "node-drain", "node-drain.io/role": "leader"})
    );
    assert_eq!(webhook["spec"]["ports"][0]["name"], "http");
    assert_eq!(webhook["spec"]["ports"][0]["port"], 8080);
    assert_eq!(
        find(&rendered, "Service", "node-drain-metrics")["spec"]["selector"],
        pods
    );
    // The leader names its own Pod and namespace from the downward API.
    let downward: Vec<(String, String)> = container(deployment)["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| {
            Some((
                str_at(e, "/name"),
                e.pointer("/valueFrom/fieldRef/fieldPath")?
                    .as_str()?
                    .to_string(),
            ))
        })
        .collect();
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
        ("NODE_NAME", "spec.nodeName"),
    ] {
        assert!(
            downward.contains(&(name.into(), field.into())),
            "{name}: {downward:?}"
        );
    }
    // Two replicas on two nodes, one kept through voluntary disruptions.
    let anti = &workload_pod_spec(deployment)["affinity"]["podAntiAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(anti["labelSelector"]["matchLabels"], pods);
    assert_eq!(
        workload_pod_spec(deployment)["topologySpreadConstraints"][0]["labelSelector"]
            ["matchLabels"],
        pods
    );
    let pdb = find(&rendered, "PodDisruptionBudget", "node-drain");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], pods);
    // Restricted, with the admin socket in an emptyDir of the same uid.
    let pod_security = &workload_pod_spec(deployment)["securityContext"];
    assert_eq!(pod_security["runAsUser"], 65532);
    assert_eq!(pod_security["fsGroup"], 65532);
    assert_eq!(
        container(deployment)["securityContext"]["readOnlyRootFilesystem"],
        true
    );
    let resources = &container(deployment)["resources"];
    assert_eq!(
        resources["requests"],
        json!({"cpu": "50m", "memory": "64Mi"})
    );
    assert_eq!(resources["limits"]["memory"], "256Mi");
    let run = workload_pod_spec(deployment)["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "run")
        .expect("the socket's volume");
    assert!(run.get("emptyDir").is_some(), "{run}");
    // The flags are node-drain's, and every path lies in its mount.
    let serve = serve_args(deployment);
    assert!(serve.admin_socket.starts_with(mount(deployment, "run")));
    assert!(serve
        .webhook_token_file
        .starts_with(mount(deployment, "token")));
    let config = serve.config.expect("--config");
    assert!(config.starts_with(mount(deployment, "config")));
    assert_eq!(serve.opts.retire, Retire::Nodeclaim);
    let retire_node = objects(&kustomize(&env, "deploy/overlays/retire-node"));
    assert_eq!(
        serve_args(find(&retire_node, "Deployment", "node-drain"))
            .opts
            .retire,
        Retire::Node
    );
    // Only Alertmanager and Prometheus reach the port.
    let policy = find(&rendered, "NetworkPolicy", "node-drain");
    assert_eq!(policy["spec"]["podSelector"]["matchLabels"], pods);
    assert_eq!(
        policy["spec"]["ingress"][0]["ports"],
        json!([{"port": 8080, "protocol": "TCP"}])
    );
    let peer = &policy["spec"]["ingress"][0]["from"][0];
    assert_eq!(
        peer["podSelector"]["matchExpressions"][0]["values"],
        json!(["alertmanager", "prometheus"])
    );
}
