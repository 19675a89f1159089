//! Running the image under test with podman as a restricted pod runs:
//! building it (`scripts/image`), the shipped RBAC copied into a namespace of
//! the test's own (`ShippedRbac`), a container handle removed on drop, and the
//! audit log's calls by one user.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::watcher;
use serde_json::{json, Value};

use super::*;

/// The ServiceAccount and the Lease the shipped manifests name.
pub const SERVICE_ACCOUNT: &str = "node-drain";
pub const LEASE: &str = "node-drain";
/// The image's non-root user (Containerfile, Containerfile.scratch).
pub const USER: &str = "65532:65532";
/// Where a pod's ServiceAccount credentials are mounted (kube reads them there).
pub const SERVICE_ACCOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The admin socket's directory: the one writable path (an emptyDir in the Deployment).
pub const ADMIN_DIR: &str = "/var/run/node-drain";
pub const IMAGE: &str = "localhost/node-drain:image-test";

/// The RBAC the product ships: `deploy/base/rbac.yaml` (the kustomize base).
pub fn shipped_rbac() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/base/rbac.yaml")
}

pub fn kubectl(env: &TestEnv, args: &[&str]) -> Output {
    kubectl_with_input(env, args, "")
}

pub fn kubectl_with_input(env: &TestEnv, args: &[&str], input: &str) -> Output {
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
pub struct ShippedRbac {
    cluster_objects: Vec<(String, String)>,
}

impl ShippedRbac {
    pub fn install(env: &TestEnv, namespace: &str) -> Self {
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
pub fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.args(["--runtime", "runc", "--cgroup-manager=cgroupfs"]);
    cmd
}

/// The API server's port, from the testenv kubeconfig's server URL.
pub fn api_server_port(env: &TestEnv) -> u16 {
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
pub struct Container {
    pub name: String,
}

impl Container {
    /// `podman run -d`; panics with podman's error when it does not start.
    pub fn run(name: &str, options: &[String], image: &str, args: &[&str]) -> Self {
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
    pub fn logs(&self) -> String {
        let out = podman().args(["logs", "--tail", "40", &self.name]).output();
        out.map(|o| format!("{}{}", text(&o.stdout), text(&o.stderr)))
            .unwrap_or_default()
    }

    /// None while it runs, else its exit code.
    pub fn exited(&self) -> Option<i64> {
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
    pub fn assert_running(&self, while_: &str) {
        if let Some(code) = self.exited() {
            panic!(
                "the container exited ({code}) while {while_}; its log:\n{}",
                self.logs()
            );
        }
    }

    /// `node-drain ARGS` inside the running container, as the image's user.
    pub fn exec(&self, args: &[&str]) -> Output {
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
pub fn build_image() -> String {
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
pub fn write_readable(path: &Path, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

pub fn readable_dir(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Audit events of `user` (the in-cluster identity): (verb,
/// resource/subresource, namespace, name, response code).
pub fn audit_by(env: &TestEnv, user: &str) -> Vec<(String, String, String, String, u64)> {
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
pub async fn watch_node(client: kube::Client, node: String, seen: Arc<Mutex<Vec<(bool, String)>>>) {
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
