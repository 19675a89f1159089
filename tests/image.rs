//! The container image, run the way a cluster runs it: `scripts/image` builds
//! it from the binary under test; podman runs it as uid 65532 on a read-only
//! root filesystem with every capability dropped, in in-cluster mode for real
//! (a ServiceAccount token from a TokenRequest, the cluster CA and the
//! namespace at the ServiceAccount path, `KUBERNETES_SERVICE_HOST/PORT`), with
//! only the RBAC that `deploy/` ships (copied into a namespace of its own: see
//! `ShippedRbac`). It creates and wins the Lease `node-drain` there, drains a
//! node named by an Alertmanager webhook (every API call as the
//! ServiceAccount: the audit log says so), tells a fake Slack addressed by
//! host name (`localhost`: name resolution in a FROM scratch image), answers
//! `node-drain admin status` through `podman exec` as the same uid, reaches
//! the test environment's Prometheus (`admin plan`), and exits 0 on SIGTERM as
//! the container's PID 1, giving the Lease back.
//!
//! A missing verb in the RBAC, or a missing CA, fails it with the container's
//! log in the message (the README's image section says how that was checked).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::{json, Value};
use support::daemon::{alert, free_port, TOKEN};
use support::image::*;
use support::image_pod::*;
use support::slack::FakeSlack;
use support::*;

const SMALL: Requests = Requests {
    cpu: "500m",
    memory: "512Mi",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_drains_a_node_in_cluster_mode_as_the_shipped_service_account() {
    let image = build_image();
    let scene = Scene::new("image", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);

    // The shipped RBAC, copied into a namespace of the test's own (see
    // `ShippedRbac`): only its rules, and all of them, reach the ServiceAccount.
    let namespace = TestNamespace::create(client, "node-drain-image").await;
    let rbac = ShippedRbac::install(env, &namespace.name);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace.name);

    // The ServiceAccount's credentials, laid out as the kubelet mounts them.
    let mounts = PodMounts::new(
        env,
        &namespace.name,
        "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n",
    );

    // A fake Slack, addressed by host name: the image resolves `localhost`
    // without NSS modules (glibc's built-in files lookup, podman's /etc/hosts).
    let slack = FakeSlack::start().await;
    let slack_url = slack.url_at("localhost");

    // Its workload first, so the node the alert names is known.
    let w = scene.workloads();
    w.deployment("web", 2, SMALL, 2).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(120)).await;
    let node = node_of(&pods[0]);
    let on_node: Vec<String> = pods
        .iter()
        .filter(|p| node_of(p) == node)
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();

    // The Pod it stands for (KWOK runs it): the leader labels it, as the
    // shipped Role allows (pods get/list/patch in its namespace).
    let hostname = unique("node-drain-image");
    let own: Pod = serde_json::from_value(json!({
        "metadata": {"name": hostname, "labels": {"app.kubernetes.io/name": "node-drain"}},
        "spec": {
            "nodeName": "testenv-static",
            "tolerations": [{"key": "node-drain.io/testenv-static", "operator": "Exists"}],
            "containers": [{"name": "node-drain", "image": "node-drain:test"}]
        }
    }))
    .unwrap();
    let own_pods: Api<Pod> = Api::namespaced(client.clone(), &namespace.name);
    own_pods.create(&Default::default(), &own).await.unwrap();
    let role_label = || async {
        own_pods
            .get(&hostname)
            .await
            .unwrap()
            .metadata
            .labels
            .unwrap_or_default()
            .get("node-drain.io/role")
            .cloned()
    };

    // Run as a restricted pod runs, with the Deployment's environment (the
    // downward API: the Lease lives in the pod's namespace).
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let prometheus = env.prometheus_url();
    let options = restricted_pod_options(
        env,
        &hostname,
        &mounts,
        &[
            ("POD_NAMESPACE", &namespace.name),
            ("POD_NAME", &hostname),
            ("NODEPOOL_NAME", &pool.name),
            ("PROMETHEUS_ADDRESS", &prometheus),
            ("PROMETHEUS_SCOPE_ORG_ID", ""),
            ("SLACK_WEBHOOK_URL", &slack_url),
            ("CLUSTER_NAME", "image-test"),
            ("RUST_LOG", "info"),
        ],
    );
    let http_address = format!("127.0.0.1:{port}");
    let container = Container::run(
        &hostname,
        &options,
        &image,
        &[
            "serve",
            "--kube-config",
            "cluster",
            "--http-address",
            &http_address,
            "--config",
            "/etc/node-drain/config.yaml",
            "--webhook-token-file",
            "/etc/node-drain/token",
        ],
    );

    // Leader election as the ServiceAccount (the Lease is new: created as it):
    // the Role is proven.
    let holder = wait_for(
        "the container to hold the Lease node-drain in its namespace",
        Duration::from_secs(60),
        || async {
            container.assert_running("waiting for the Lease");
            let lease = leases.get_opt(LEASE).await.map_err(|e| e.to_string())?;
            let holder = lease
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity)
                .unwrap_or_default();
            if holder == hostname {
                Ok(Some(holder))
            } else {
                Err(format!("holder {holder:?}; log:\n{}", container.logs()))
            }
        },
    )
    .await;
    let http = reqwest::Client::new();
    wait_for(
        "the container ready (leader, reconciled)",
        Duration::from_secs(60),
        || async {
            container.assert_running("waiting for /readyz");
            match http.get(format!("{url}/readyz")).send().await {
                Ok(r) if r.status() == 200 => Ok(Some(())),
                Ok(r) => Err(format!("{}; log:\n{}", r.status(), container.logs())),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;

    // Its Pod labelled the leader, as the ServiceAccount.
    wait_for(
        "the leader's Pod labelled",
        Duration::from_secs(30),
        || async {
            match role_label().await.as_deref() {
                Some("leader") => Ok(Some(())),
                other => Err(format!("{other:?}; log:\n{}", container.logs())),
            }
        },
    )
    .await;

    // The admin socket, through `podman exec` as the same uid (as `kubectl
    // exec` does): the leader's status.
    let admin_socket = format!("{ADMIN_DIR}/admin.sock");
    let admin = |command: &str| {
        let out = container.exec(&[
            "admin",
            "--admin-socket",
            &admin_socket,
            "--output",
            "json",
            command,
        ]);
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out, answer)
    };
    let (out, answer) = admin("status");
    assert!(
        out.status.success() && answer["ok"] == json!(true),
        "admin status: {answer} {}",
        text(&out.stderr)
    );
    assert_eq!(answer["role"]["leader"], json!(true), "{answer}");

    // Prometheus from inside the image: the plan reads the NodePool's allocate rate.
    wait_nodepool_cpu_metrics(env, &pool.name, None, Some(1.0)).await;
    let (out, plan) = admin("plan");
    assert!(
        out.status.success() && plan["ok"] == json!(true),
        "admin plan (Prometheus at {}): {plan} {}\n{}",
        env.prometheus_url(),
        text(&out.stderr),
        container.logs()
    );

    // The alert, as Alertmanager sends it.
    let seen: Arc<Mutex<Vec<(bool, String)>>> = Arc::default();
    let watch = tokio::spawn(watch_node(client.clone(), node.clone(), seen.clone()));
    let posted = http
        .post(format!("{url}/v1/alerts"))
        .bearer_auth(TOKEN)
        .json(&alert(
            json!({"alertname": "NodeDiskPressure", "node": node}),
            "2026-11-29T03:00:00Z",
        ))
        .send()
        .await
        .expect("POST /v1/alerts")
        .status();
    assert_eq!(posted, 202, "{}", container.logs());
    wait_for(
        "the node drained and retired by the container",
        Duration::from_secs(120),
        || async {
            container.assert_running("draining");
            match get_node(client, &node).await {
                None => Ok(Some(())),
                Some(n) if n.metadata.deletion_timestamp.is_some() => Ok(Some(())),
                Some(n) if annotation(&n, "node-drain.io/state").as_deref() == Some("restored") => {
                    panic!(
                        "the drain failed (the node was restored): {:?}; log:\n{}",
                        annotation(&n, "node-drain.io/reason"),
                        container.logs()
                    )
                }
                Some(n) => Err(format!(
                    "{:?}; log:\n{}",
                    annotation(&n, "node-drain.io/state"),
                    container.logs()
                )),
            }
        },
    )
    .await;
    watch.abort();

    // Cordoned and recorded before its pods left.
    let states = seen.lock().unwrap().clone();
    assert!(
        states
            .iter()
            .any(|(cordoned, state)| *cordoned && state == "cordoned")
            && states
                .iter()
                .any(|(cordoned, state)| *cordoned && state == "drained"),
        "the node was cordoned, then recorded drained: {states:?}"
    );
    // Every pod on it evicted once, through the Eviction API, as the ServiceAccount.
    assert_evicted_at_most_once(env, &ns.name);
    let account_user = format!("system:serviceaccount:{}:{SERVICE_ACCOUNT}", namespace.name);
    let calls = audit_by(env, &account_user);
    for pod in &on_node {
        assert!(
            calls.iter().any(|(verb, resource, namespace, name, code)| {
                verb == "create"
                    && resource == "pods/eviction"
                    && namespace == &ns.name
                    && name == pod
                    && *code == 201
            }),
            "pod {pod} evicted by {account_user}: {calls:?}"
        );
    }
    assert!(
        calls
            .iter()
            .any(|(verb, resource, _, name, code)| verb == "patch"
                && resource == "nodes"
                && name == &node
                && *code == 200),
        "the node patched (cordon, record) by {account_user}: {calls:?}"
    );
    let reasons: Vec<String> = node_events(client, &node)
        .await
        .into_iter()
        .map(|(reason, _)| reason)
        .collect();
    for reason in ["DrainStarted", "DrainSucceeded", "NodeRetired"] {
        assert!(
            reasons.contains(&reason.to_string()),
            "Event {reason} missing in {reasons:?}"
        );
    }

    // Slack heard it, through the name the image resolved.
    let drained = format!("{node} drained");
    wait_for(
        "the fake Slack to hear the drain",
        Duration::from_secs(30),
        || async {
            let texts = slack.texts();
            if texts.iter().any(|t| t.contains(&drained)) {
                Ok(Some(()))
            } else {
                Err(format!("{texts:#?}; log:\n{}", container.logs()))
            }
        },
    )
    .await;
    let log = container.logs();
    assert!(
        !log.contains("s3cret"),
        "the webhook URL never appears in the log:\n{log}"
    );

    // SIGTERM to the container's PID 1 (no init in the image): exit 0, Lease given back.
    let out = podman()
        .args(["stop", "--time", "30", &container.name])
        .output()
        .unwrap();
    assert!(out.status.success(), "podman stop: {}", text(&out.stderr));
    assert_eq!(
        container.exited(),
        Some(0),
        "exit code after SIGTERM; log:\n{}",
        container.logs()
    );
    let released = leases
        .get(LEASE)
        .await
        .unwrap()
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    assert!(
        released.is_empty(),
        "after SIGTERM the Lease is still held by {released:?} (was {holder})"
    );

    assert_eq!(
        role_label().await,
        None,
        "SIGTERM takes the leader label off"
    );

    drop(container);
    drop(mounts);
    drop(rbac);
    namespace.delete().await;
    scene.cleanup().await;
}
