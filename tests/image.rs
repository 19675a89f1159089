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

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::watcher;
use serde_json::{json, Value};
use support::daemon::{alert, free_port, tempdir, TOKEN};
use support::http::{serve, Request, Response};
use support::*;

/// The ServiceAccount and the Lease the shipped manifests name.
const SERVICE_ACCOUNT: &str = "node-drain";
const LEASE: &str = "node-drain";
/// The image's non-root user (Containerfile, Containerfile.scratch).
const USER: &str = "65532:65532";
/// Where a pod's ServiceAccount credentials are mounted (kube reads them there).
const SERVICE_ACCOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The admin socket's directory: the one writable path (an emptyDir in the Deployment).
const ADMIN_DIR: &str = "/var/run/node-drain";
const IMAGE: &str = "localhost/node-drain:image-test";

const SMALL: Requests = Requests {
    cpu: "500m",
    memory: "512Mi",
};

/// The RBAC the product ships: `deploy/base/rbac.yaml` (the kustomize base),
/// or `deploy/rbac.yaml` until that layout lands.
fn shipped_rbac() -> PathBuf {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let base = deploy.join("base/rbac.yaml");
    if base.exists() {
        base
    } else {
        deploy.join("rbac.yaml")
    }
}

fn kubectl(env: &TestEnv, args: &[&str]) -> Output {
    kubectl_with_input(env, args, "")
}

fn kubectl_with_input(env: &TestEnv, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env.kubectl())
        .env("KUBECONFIG", env.kubeconfig())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().expect("run kubectl")
}

/// The shipped RBAC file, installed for a ServiceAccount of the test's own:
/// its namespaced objects moved into the test's namespace, its cluster-wide
/// ones (and the roleRefs naming them) suffixed with that namespace's name.
/// The test cluster is shared: the canonical `node-drain` objects are also
/// applied, in other versions, by other tests and branches, so a rule missing
/// from this file could be granted by one of those and go unseen. Here the
/// ServiceAccount gets this file's rules and nothing else. Cluster-wide
/// copies are deleted when dropped (the namespace takes the rest).
struct ShippedRbac {
    cluster_objects: Vec<(String, String)>,
}

impl ShippedRbac {
    fn install(env: &TestEnv, namespace: &str) -> Self {
        let path = shipped_rbac();
        let source = std::fs::read_to_string(&path).unwrap();
        let rename = |name: &str| format!("{name}-{namespace}");
        let mut items = Vec::new();
        let mut cluster_objects = Vec::new();
        for document in serde_norway::Deserializer::from_str(&source) {
            let mut object = <Value as serde::Deserialize>::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let kind = object["kind"].as_str().unwrap_or_default().to_string();
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match kind.as_str() {
                "" | "Namespace" => continue,
                "ClusterRole" | "ClusterRoleBinding" => {
                    object["metadata"]["name"] = json!(rename(&name));
                    cluster_objects.push((kind.clone(), rename(&name)));
                }
                _ => object["metadata"]["namespace"] = json!(namespace),
            }
            if object["roleRef"]["kind"] == "ClusterRole" {
                let role = object["roleRef"]["name"].as_str().unwrap_or_default();
                object["roleRef"]["name"] = json!(rename(role));
            }
            if let Some(subjects) = object["subjects"].as_array_mut() {
                for subject in subjects
                    .iter_mut()
                    .filter(|s| s["kind"] == "ServiceAccount")
                {
                    subject["namespace"] = json!(namespace);
                }
            }
            items.push(object);
        }
        let rbac = Self { cluster_objects };
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
        let out = kubectl_with_input(env, &["apply", "-f", "-"], &list.to_string());
        assert!(
            out.status.success(),
            "apply {} (in namespace {namespace}): {}",
            path.display(),
            text(&out.stderr)
        );
        rbac
    }
}

impl Drop for ShippedRbac {
    fn drop(&mut self) {
        let env = TestEnv::load();
        for (kind, name) in &self.cluster_objects {
            let _ = kubectl(
                &env,
                &["delete", kind, name, "--ignore-not-found", "--wait=false"],
            );
        }
    }
}

/// podman with what these machines need (research note: crun refuses hybrid
/// cgroups; runc with cgroupfs works).
fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.args(["--runtime", "runc", "--cgroup-manager=cgroupfs"]);
    cmd
}

/// The API server's port, from the testenv kubeconfig's server URL.
fn api_server_port(env: &TestEnv) -> u16 {
    let config: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(env.kubeconfig()).unwrap()).unwrap();
    let server = config["clusters"][0]["cluster"]["server"]
        .as_str()
        .expect("a server in the kubeconfig");
    url::Url::parse(server)
        .unwrap()
        .port()
        .expect("the server URL names its port")
}

/// A running container, killed and removed when dropped (after a failure too).
struct Container {
    name: String,
}

impl Container {
    /// `podman run -d`; panics with podman's error when it does not start.
    fn run(name: &str, options: &[String], image: &str, args: &[&str]) -> Self {
        let out = podman()
            .args(["run", "--detach", "--name", name])
            .args(options)
            .arg(image)
            .args(args)
            .output()
            .expect("run podman");
        let container = Self { name: name.into() };
        assert!(
            out.status.success(),
            "podman run: {}{}",
            text(&out.stderr),
            container.logs()
        );
        container
    }

    /// The last 40 lines of its log (for failure messages).
    fn logs(&self) -> String {
        let out = podman().args(["logs", "--tail", "40", &self.name]).output();
        out.map(|o| format!("{}{}", text(&o.stdout), text(&o.stderr)))
            .unwrap_or_default()
    }

    /// None while it runs, else its exit code.
    fn exited(&self) -> Option<i64> {
        let out = podman()
            .args([
                "inspect",
                "--format",
                "{{.State.Running}} {{.State.ExitCode}}",
                &self.name,
            ])
            .output()
            .ok()?;
        let state = text(&out.stdout);
        let mut words = state.split_whitespace();
        match (words.next(), words.next()) {
            (Some("false"), Some(code)) => code.parse().ok(),
            _ => None,
        }
    }

    /// Fails the test with the container's log when it has stopped.
    fn assert_running(&self, while_: &str) {
        if let Some(code) = self.exited() {
            panic!(
                "the container exited ({code}) while {while_}; its log:\n{}",
                self.logs()
            );
        }
    }

    /// `node-drain ARGS` inside the running container, as the image's user.
    fn exec(&self, args: &[&str]) -> Output {
        podman()
            .args(["exec", "--user", USER, &self.name, "node-drain"])
            .args(args)
            .output()
            .expect("podman exec")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "--force", "--time", "0", &self.name])
            .output();
    }
}

/// Builds the image from the binary cargo built for this test (so no second
/// build, and the image holds exactly what is tested).
fn build_image() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/image");
    let started = std::time::Instant::now();
    let out = Command::new(&script)
        .args(["--binary", env!("CARGO_BIN_EXE_node-drain")])
        .env("NODE_DRAIN_IMAGE", IMAGE)
        .output()
        .expect("run scripts/image");
    assert!(
        out.status.success(),
        "scripts/image: {}\n(is podman installed? testenv/install-deps)",
        text(&out.stderr)
    );
    let image = text(&out.stdout).trim().to_string();
    assert_eq!(image, IMAGE, "scripts/image prints the image's name");
    eprintln!("built {image} in {:.1?}", started.elapsed());
    image
}

/// A file the container's user can read.
fn write_readable(path: &Path, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

fn readable_dir(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Audit events of `user` (the in-cluster identity): (verb,
/// resource/subresource, namespace, name, response code).
fn audit_by(env: &TestEnv, user: &str) -> Vec<(String, String, String, String, u64)> {
    let log = std::fs::read_to_string(env.var("TESTENV_AUDIT_LOG")).unwrap_or_default();
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["stage"] == "ResponseComplete")
        .filter(|e| e["user"]["username"] == user)
        .map(|e| {
            let o = &e["objectRef"];
            let field = |v: &Value| v.as_str().unwrap_or("").to_string();
            let mut resource = field(&o["resource"]);
            if let Some(sub) = o["subresource"].as_str() {
                resource = format!("{resource}/{sub}");
            }
            (
                field(&e["verb"]),
                resource,
                field(&o["namespace"]),
                field(&o["name"]),
                e["responseStatus"]["code"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Records every (unschedulable, node-drain.io/state) the node goes through.
async fn watch_node(client: kube::Client, node: String, seen: Arc<Mutex<Vec<(bool, String)>>>) {
    let nodes: Api<Node> = Api::all(client);
    let mut stream = watcher(
        nodes,
        watcher::Config::default().fields(&format!("metadata.name={node}")),
    )
    .boxed();
    while let Some(Ok(event)) = stream.next().await {
        if let watcher::Event::Apply(n) | watcher::Event::InitApply(n) = event {
            let state = annotation(&n, "node-drain.io/state").unwrap_or_default();
            seen.lock().unwrap().push((unschedulable(&n), state));
        }
    }
}

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
    let dir = tempdir::Dir(std::env::temp_dir().join(unique("node-drain-image")));
    let (account, settings) = (dir.0.join("serviceaccount"), dir.0.join("settings"));
    readable_dir(&dir.0);
    readable_dir(&account);
    readable_dir(&settings);
    let out = kubectl(
        env,
        &[
            "create",
            "token",
            SERVICE_ACCOUNT,
            "-n",
            &namespace.name,
            "--duration",
            "1h",
        ],
    );
    assert!(
        out.status.success(),
        "kubectl create token: {}",
        text(&out.stderr)
    );
    write_readable(&account.join("token"), text(&out.stdout).trim());
    let ca = Path::new(&env.var("TESTENV_STATE")).join("pki/ca.crt");
    write_readable(
        &account.join("ca.crt"),
        &std::fs::read_to_string(&ca).unwrap(),
    );
    write_readable(&account.join("namespace"), &namespace.name);
    write_readable(&settings.join("token"), &format!("{TOKEN}\n"));
    write_readable(
        &settings.join("config.yaml"),
        "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n",
    );

    // A fake Slack, addressed by host name: the image resolves `localhost`
    // without NSS modules (glibc's built-in files lookup, podman's /etc/hosts).
    let messages: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorded = messages.clone();
    let slack = serve(move |req: Request| {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        recorded
            .lock()
            .unwrap()
            .push(body["text"].as_str().unwrap_or("").to_string());
        async { Response::new(200, "text/plain", "ok") }
    })
    .await;
    let slack_url = format!(
        "http://localhost:{}/services/T0/B0/s3cret",
        slack.addr.port()
    );

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

    // Run as a restricted pod runs: non-root, read-only root, no capabilities,
    // no privilege escalation; only the admin socket's directory writable.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let hostname = unique("node-drain-image");
    let mount = |from: &Path, to: &str| format!("{}:{to}:ro", from.display());
    let var = |name: &str, value: &str| format!("{name}={value}");
    let options: Vec<String> = [
        "--ulimit=nofile=1024:1024",
        "--ulimit=nproc=1024:1024",
        "--network=host",
        "--read-only",
        "--read-only-tmpfs=false",
        "--cap-drop=all",
        "--security-opt=no-new-privileges",
        &format!("--user={USER}"),
        &format!("--hostname={hostname}"),
        &format!("--mount=type=tmpfs,destination={ADMIN_DIR},tmpfs-mode=0700,chown=true"),
        "--volume",
        &mount(&account, SERVICE_ACCOUNT_PATH),
        "--volume",
        &mount(&settings, "/etc/node-drain"),
        "--env",
        &var("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
        "--env",
        &var("KUBERNETES_SERVICE_PORT", &api_server_port(env).to_string()),
        // The Deployment's downward API: the Lease lives in the pod's namespace.
        "--env",
        &var("POD_NAMESPACE", &namespace.name),
        "--env",
        &var("NODEPOOL_NAME", &pool.name),
        "--env",
        &var("PROMETHEUS_ADDRESS", &env.prometheus_url()),
        "--env",
        &var("PROMETHEUS_SCOPE_ORG_ID", ""),
        "--env",
        &var("SLACK_WEBHOOK_URL", &slack_url),
        "--env",
        &var("CLUSTER_NAME", "image-test"),
        "--env",
        &var("RUST_LOG", "info"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
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
            if holder.starts_with(&format!("{hostname}_")) {
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

    // The admin socket, through `podman exec` as the same uid (as `kubectl
    // exec` does): the leader's status.
    let admin_socket = format!("{ADMIN_DIR}/admin.sock");
    let out = container.exec(&[
        "admin",
        "--admin-socket",
        &admin_socket,
        "--output",
        "json",
        "status",
    ]);
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        out.status.success() && answer["ok"] == json!(true),
        "admin status: {answer} {}",
        text(&out.stderr)
    );
    assert_eq!(answer["role"]["leader"], json!(true), "{answer}");

    // Prometheus from inside the image: the plan reads the NodePool's allocate rate.
    wait_nodepool_cpu_metrics(env, &pool.name, None, Some(1.0)).await;
    let out = container.exec(&[
        "admin",
        "--admin-socket",
        &admin_socket,
        "--output",
        "json",
        "plan",
    ]);
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
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
            let texts = messages.lock().unwrap().clone();
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

    drop(container);
    drop(rbac);
    namespace.delete().await;
    scene.cleanup().await;
}
