//! What the graceful-eviction tests stand on: a MutatingWebhookConfiguration
//! of the test's own (its namespace only, deleted when dropped), the daemon
//! with its admission webhook, evictions made as the VPA updater (impersonated),
//! a managed Deployment behind a Service, and a sampler of its ready endpoints.
#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, EvictParams, PostParams};
use kube::Client;
use serde_json::json;

use super::daemon::{free_port, Daemon};
use super::*;

#[path = "graceful_sampler.rs"]
mod sampler;
pub use sampler::*;

pub const VPA: &str = "system:serviceaccount:kube-system:vpa-updater";

/// A MutatingWebhookConfiguration for `CREATE pods/eviction` in one namespace,
/// calling `https://127.0.0.1:<port>`, deleted when dropped.
pub struct Webhook {
    pub name: String,
    client: Client,
}

impl Webhook {
    pub async fn create(client: &Client, namespace: &str, port: u16) -> Self {
        let name = unique("graceful-test");
        let object: MutatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"node-drain.io/test": "true"}},
            "webhooks": [{
                "name": "eviction.graceful.node-drain.io",
                "clientConfig": {"url": format!("https://127.0.0.1:{port}/v1/admission/eviction")},
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                           "resources": ["pods/eviction"], "scope": "Namespaced"}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "failurePolicy": "Ignore",
                "sideEffects": "NoneOnDryRun",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5
            }]
        }))
        .unwrap();
        Api::<MutatingWebhookConfiguration>::all(client.clone())
            .create(&PostParams::default(), &object)
            .await
            .expect("create MutatingWebhookConfiguration");
        Self {
            name,
            client: client.clone(),
        }
    }

    /// Waits until the daemon (leader) wrote its CA into the caBundle.
    pub async fn wait_ca_bundle(&self) {
        let api: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
        wait_for(
            "the leader to set the caBundle",
            Duration::from_secs(60),
            || async {
                let c = api.get(&self.name).await.map_err(|e| e.to_string())?;
                let set = c.webhooks.iter().flatten().all(|w| {
                    w.client_config
                        .ca_bundle
                        .as_ref()
                        .is_some_and(|b| !b.0.is_empty())
                });
                Ok(set.then_some(()))
            },
        )
        .await
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let env = TestEnv::load();
        let _ = std::process::Command::new(env.kubectl())
            .env("KUBECONFIG", env.kubeconfig())
            .args([
                "delete",
                "mutatingwebhookconfiguration",
                &self.name,
                "--ignore-not-found",
                "--wait=false",
            ])
            .output();
    }
}

/// The daemon with its admission webhook on a free port; config `graceful`
/// is the YAML of the `graceful:` section (indented by the caller).
pub fn start_daemon(
    env: &TestEnv,
    nodepool: &str,
    port: u16,
    webhook: &str,
    graceful: &str,
) -> Daemon {
    start_daemon_on(
        env,
        nodepool,
        &unique("graceful-lease"),
        port,
        webhook,
        graceful,
    )
}

/// As `start_daemon`, under the Lease `lease` (a restart takes over its drains).
pub fn start_daemon_on(
    env: &TestEnv,
    nodepool: &str,
    lease: &str,
    port: u16,
    webhook: &str,
    graceful: &str,
) -> Daemon {
    let config = format!("rules: []\ngraceful:\n{graceful}");
    Daemon::start_args(
        env,
        nodepool,
        lease,
        "",
        &config,
        &[],
        &[
            "--admission-address",
            &format!("127.0.0.1:{port}"),
            "--admission-webhook-configuration",
            webhook,
        ],
    )
}

pub fn admission_port() -> u16 {
    free_port()
}

/// Lets the VPA updater's ServiceAccount read and evict pods in `namespace`.
pub async fn allow_vpa_updater(client: &Client, namespace: &str) {
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "vpa-updater"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
                  {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]}]
    }))
    .unwrap();
    Api::<Role>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &role)
        .await
        .expect("create Role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "vpa-updater"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "vpa-updater"},
        "subjects": [{"kind": "ServiceAccount", "name": "vpa-updater", "namespace": "kube-system"}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create RoleBinding");
}

/// A client acting as `user` (impersonation), never retrying on its own.
pub async fn client_as(env: &TestEnv, user: &str) -> Client {
    let mut kubeconfig = kube::config::Kubeconfig::read_from(env.kubeconfig()).unwrap();
    for auth in &mut kubeconfig.auth_infos {
        if let Some(a) = auth.auth_info.as_mut() {
            a.impersonate = Some(user.into());
            a.impersonate_groups = Some(vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:kube-system".into(),
                "system:authenticated".into(),
            ]);
        }
    }
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.default_retry = false;
    Client::try_from(config).unwrap()
}

/// An eviction as `client`'s user: the HTTP code and the body.
pub async fn evict(client: &Client, namespace: &str, pod: &str) -> (u16, String) {
    let request = kube::core::Request::new(format!("/api/v1/namespaces/{namespace}/pods"))
        .evict(pod, &EvictParams::default())
        .unwrap();
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .expect("send the eviction");
    let code = response.status().as_u16();
    let body = response
        .into_body()
        .collect_bytes()
        .await
        .unwrap_or_default();
    (code, String::from_utf8_lossy(&body).to_string())
}

/// A Deployment of `replicas` managed pods (label `vpa-managed: "true"`)
/// and a Service over `app=<name>`.
pub async fn managed_deployment(w: &Workloads<'_>, name: &str, replicas: i32, managed: bool) {
    deployment_behind_service(w, name, replicas, managed, false).await
}

/// As `managed_deployment`; `one_per_node`: hostname anti-affinity among the
/// pods, so a replacement needs a new node and takes seconds to be Ready (on
/// KWOK a pod is Ready at once: no gap would be seen otherwise).
pub async fn deployment_behind_service(
    w: &Workloads<'_>,
    name: &str,
    replicas: i32,
    managed: bool,
    one_per_node: bool,
) {
    let mut spec = pod_spec(
        w.nodepool,
        Requests {
            cpu: "100m",
            memory: "128Mi",
        },
        2,
    );
    spec["terminationGracePeriodSeconds"] = json!(2);
    if one_per_node {
        spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": name}}, "topologyKey": "kubernetes.io/hostname"}
        ]}});
    }
    let mut labels = json!({"app": name});
    if managed {
        labels["vpa-managed"] = json!("true");
    }
    let object: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": labels}, "spec": spec}
        }
    }))
    .unwrap();
    Api::namespaced(w.client.clone(), w.namespace)
        .create(&PostParams::default(), &object)
        .await
        .expect("create Deployment");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    Api::<Service>::namespaced(w.client.clone(), w.namespace)
        .create(&PostParams::default(), &service)
        .await
        .expect("create Service");
}

/// Prints the daemon's log when the test panics (declare it after the daemon).
pub struct LogOnPanic(pub std::path::PathBuf);

impl LogOnPanic {
    pub fn of(daemon: &Daemon) -> Self {
        Self(daemon.dir.0.join("daemon.log"))
    }
}

impl Drop for LogOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- daemon log ----\n{}",
                std::fs::read_to_string(&self.0).unwrap_or_default()
            );
        }
    }
}

/// The `graceful:` section most tests use: grace `grace` s, timeout 120 s,
/// only `namespace` included.
pub fn section(namespace: &str, grace: u64) -> String {
    format!(
        "  gracePeriodSeconds: {grace}\n  drainTimeoutSeconds: 120\n  namespaceSelector: {{include: [{namespace}]}}\n"
    )
}

pub fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// The daemon serving the webhook for the scene's namespace (config section
/// `graceful`), ready, its CA in the caBundle, and the VPA updater allowed to
/// evict there. Drop the daemon before the webhook.
pub async fn serve_graceful(scene: &Scene, graceful: &str) -> (Webhook, Daemon) {
    let (env, client, ns) = (&scene.env, &scene.client, &scene.ns.name);
    let port = admission_port();
    let webhook = Webhook::create(client, ns, port).await;
    let daemon = start_daemon(env, &scene.pool.name, port, &webhook.name, graceful);
    {
        let _log = LogOnPanic::of(&daemon);
        daemon.wait_ready().await;
        webhook.wait_ca_bundle().await;
    }
    allow_vpa_updater(client, ns).await;
    (webhook, daemon)
}

/// Evicts `name` (answered 201) and returns what became of the pod: deleted
/// by the eviction itself (a plain eviction), and/or marked for a graceful drain.
pub async fn evicted(client: &Client, as_user: &Client, ns: &str, name: &str) -> (bool, bool) {
    let (code, body) = evict(as_user, ns, name).await;
    assert_eq!(code, 201, "{body}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    match pods.get_opt(name).await.unwrap() {
        None => (true, false),
        Some(p) => (
            p.metadata.deletion_timestamp.is_some(),
            label(&p, "node-drain.io/graceful") == Some("draining"),
        ),
    }
}

/// What a plain eviction leaves: the pod deleted, never marked.
pub const PLAIN: (bool, bool) = (true, false);

/// The user the testenv kubeconfig (and so the daemon) is.
pub async fn whoami(client: &Client) -> String {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let review: SelfSubjectReview = serde_json::from_value(json!({})).unwrap();
    let answer = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("a SelfSubjectReview");
    answer
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .expect("a username")
}

/// Waits until the pod `name` is terminating or gone.
pub async fn wait_deleted(client: &Client, ns: &str, name: &str, timeout: Duration) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_for("the old pod deleted", timeout, || async {
        match pods.get_opt(name).await.map_err(|e| e.to_string())? {
            Some(p) if p.metadata.deletion_timestamp.is_none() => {
                Err(format!("labels {:?}", p.metadata.labels))
            }
            _ => Ok(Some(())),
        }
    })
    .await
}

/// Waits until the Service `service` has `count` ready endpoints.
pub async fn wait_ready_endpoints(client: &Client, ns: &str, service: &str, count: usize) {
    wait_for("the ready endpoints", Duration::from_secs(60), || async {
        let n = ready_endpoints(client, ns, service).await.len();
        if n == count {
            Ok(Some(()))
        } else {
            Err(format!("{n} of {count}"))
        }
    })
    .await
}

/// No room for a replacement: the pool may not grow, its nodes cordoned.
/// `room(true)` undoes it.
pub async fn room(scene: &Scene, open: bool) {
    let limits = if open {
        json!({"cpu": "100"})
    } else {
        json!({"cpu": "1"})
    };
    scene.pool.set_limits(limits).await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(scene.client.clone());
    for node in scene.pool.nodes().await {
        let cordon = json!({"spec": {"unschedulable": !open}});
        nodes
            .patch(
                node.metadata.name.as_deref().unwrap(),
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&cordon),
            )
            .await
            .expect("cordon");
    }
}
