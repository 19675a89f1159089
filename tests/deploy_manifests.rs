//! `deploy/` as the API server and node-drain itself read it: the base and each
//! overlay pass the restricted Pod Security Standard with no warning (server
//! dry run), the daemon's objects follow the leader-label design (Service on the
//! leader's label, every healthy replica Ready), its args and config parse with
//! node-drain's own parsers, and the daemon's and the CronJob's ConfigMaps no
//! longer collide. Nothing but the namespace, its RBAC and the ConfigMaps is
//! created for real (the test nodes are KWOK fakes).

mod support;

use clap::Parser;
use serde_json::{json, Value};

use node_drain::cli::{Cli, Command};
use node_drain::config::DaemonConfig;
use node_drain::drain::Retire;
use support::deploy::*;
use support::*;

const KUSTOMIZATIONS: [&str; 4] = [
    "deploy",
    "deploy/overlays/cronjob",
    "deploy/overlays/retire-node",
    "deploy/overlays/graceful",
];

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

/// The pod template of a Deployment or a CronJob.
fn pod_spec(workload: &Value) -> &Value {
    workload
        .pointer("/spec/template/spec")
        .or_else(|| workload.pointer("/spec/jobTemplate/spec/template/spec"))
        .expect("a pod template")
}

fn container(workload: &Value) -> &Value {
    &pod_spec(workload)["containers"][0]
}

/// The value of a plain `env` entry.
fn env_value(workload: &Value, name: &str) -> Option<String> {
    container(workload)["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .map(str::to_string)
}

/// The daemon's args as node-drain's own CLI reads them.
fn serve_args(deployment: &Value) -> node_drain::cli::ServeArgs {
    let args: Vec<String> = container(deployment)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("a string arg").to_string())
        .collect();
    let cli = Cli::try_parse_from(std::iter::once("node-drain".to_string()).chain(args.clone()))
        .unwrap_or_else(|e| panic!("{args:?} do not parse: {e}"));
    match cli.command {
        Command::Serve(serve) => serve,
        other => panic!("the Deployment runs {other:?}, not serve"),
    }
}

/// The mount path of the volume named `volume`.
fn mount(workload: &Value, volume: &str) -> String {
    container(workload)["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["name"] == volume)
        .and_then(|m| m["mountPath"].as_str())
        .unwrap_or_else(|| panic!("no mount of {volume}"))
        .to_string()
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
    let anti = &pod_spec(deployment)["affinity"]["podAntiAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(anti["labelSelector"]["matchLabels"], pods);
    assert_eq!(
        pod_spec(deployment)["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"],
        pods
    );
    let pdb = find(&rendered, "PodDisruptionBudget", "node-drain");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], pods);
    // Restricted, with the admin socket in an emptyDir of the same uid.
    let pod_security = &pod_spec(deployment)["securityContext"];
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
    let run = pod_spec(deployment)["volumes"]
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
    let token = pod_spec(deployment)["volumes"]
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
