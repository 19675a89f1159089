//! `node-drain serve` on the real test environment with its watched Node
//! cache (issue 17): once the cache is synced, plans, an admitted alert and
//! the reconciliation's rounds make no LIST of nodes (the API server's audit
//! log, by the daemon's User-Agent); a node Karpenter would taint as
//! disrupted (`kubectl taint`) is shown skipped by a following plan, from the
//! watch. The audit policy records reads only for the benches' users: the
//! daemon runs as `kubectl-bench` (a client certificate of the test's own,
//! signed by the test cluster's CA), its requests told apart by its
//! User-Agent.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::daemon::{self, alert, Daemon, TOKEN};
use support::observe::AuditEvent;
use support::*;

/// The requests `verb` of `resource` the node-drain process `holder` made
/// (its User-Agent names it; a LIST has one line, a watch one or two).
fn requests_by(env: &TestEnv, holder: &str, verb: &str, resource: &str) -> Vec<AuditEvent> {
    let text = std::fs::read_to_string(env.var("TESTENV_AUDIT_LOG")).unwrap_or_default();
    let tag = format!("({holder})");
    text.lines()
        .filter_map(|l| serde_json::from_str::<AuditEvent>(l).ok())
        // A watch still open has only its ResponseStarted line.
        .filter(|e| matches!(e.stage.as_str(), "ResponseStarted" | "ResponseComplete"))
        .filter(|e| e.user_agent.ends_with(&tag) && e.verb == verb)
        .filter(|e| e.object.as_ref().is_some_and(|o| o.resource == resource))
        .collect()
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// A dry-run plan of `node` through the admin socket: its entry.
async fn plan_of(daemon: &Daemon, node: &str) -> Value {
    let answer = daemon
        .admin(
            format!(
                "{}\n",
                json!({"cmd": "drain-node", "node": node, "dry_run": true})
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(answer["ok"], json!(true), "{answer}");
    answer["plan"]["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node"] == json!(node)).cloned())
        .unwrap_or_else(|| panic!("{node} is not in the plan: {answer}"))
}

/// Nodes of the test's own, made directly (KWOK manages them): on a cluster
/// busy with a scale run Karpenter may take minutes to provision. Deleted on drop.
struct Nodes(Vec<String>, TestEnv);

impl Drop for Nodes {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = std::process::Command::new(self.1.kubectl())
                .env("KUBECONFIG", self.1.kubeconfig())
                .args(["delete", "node", name, "--wait=false", "--ignore-not-found"])
                .output();
        }
    }
}

async fn make_nodes(client: &kube::Client, pool: &str, count: usize) -> Nodes {
    use k8s_openapi::api::core::v1::Node;
    let api: kube::Api<Node> = kube::Api::all(client.clone());
    let mut names = Vec::new();
    for _ in 0..count {
        let name = unique("ncache-node");
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name,
                         "labels": {"karpenter.sh/nodepool": pool, "karpenter.sh/initialized": "true",
                                    "kubernetes.io/hostname": name, "type": "kwok"},
                         "annotations": {"kwok.x-k8s.io/node": "fake"}},
            "spec": {}
        }))
        .unwrap();
        api.create(&Default::default(), &node)
            .await
            .expect("create node");
        names.push(name);
    }
    Nodes(names, TestEnv::load())
}

/// A kubeconfig for the audited user `kubectl-bench` (see the module doc),
/// written in `dir`.
fn audited_kubeconfig(env: &TestEnv, dir: &std::path::Path) -> std::path::PathBuf {
    const USER: &str = "kubectl-bench";
    let pki = std::path::Path::new(&env.var("TESTENV_STATE")).join("pki");
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.output().expect("run");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (key, csr, crt, ext) = (
        dir.join("u.key"),
        dir.join("u.csr"),
        dir.join("u.crt"),
        dir.join("ext.cnf"),
    );
    std::fs::write(&ext, "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=critical,CA:FALSE\n").unwrap();
    run(std::process::Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={USER}"),
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    run(std::process::Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-CAcreateserial"])
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(pki.join("ca.crt"))
        .arg("-CAkey")
        .arg(pki.join("ca.key"))
        .arg("-CAserial")
        .arg(dir.join("ca.srl"))
        .arg("-out")
        .arg(&crt)
        .arg("-extfile")
        .arg(&ext));
    let kubectl = || {
        let mut c = std::process::Command::new(env.kubectl());
        c.env("KUBECONFIG", env.kubeconfig());
        c
    };
    let server = run(kubectl().args([
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]));
    let binding = run(kubectl().args([
        "create",
        "clusterrolebinding",
        USER,
        "--clusterrole=cluster-admin",
        &format!("--user={USER}"),
        "--dry-run=client",
        "-o",
        "yaml",
    ]));
    let mut apply = kubectl()
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    apply
        .stdin
        .take()
        .unwrap()
        .write_all(binding.as_bytes())
        .unwrap();
    assert!(
        apply.wait().unwrap().success(),
        "apply the ClusterRoleBinding"
    );
    let path = dir.join("audited.kubeconfig");
    std::fs::write(&path, format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: t, cluster: {{server: \"{server}\", certificate-authority: \"{}\"}}}}]\nusers: [{{name: u, user: {{client-certificate: \"{}\", client-key: \"{}\"}}}}]\ncontexts: [{{name: t, context: {{cluster: t, user: u}}}}]\ncurrent-context: t\n",
        pki.join("ca.crt").display(), crt.display(), key.display())).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_and_alerts_read_the_watched_nodes_and_a_taint_arrives_by_the_watch() {
    let scene = Scene::new("ncache", "c-4x-amd64-linux", None).await;
    let (env, client, pool) = (&scene.env, &scene.client, &scene.pool);
    let made = make_nodes(client, &pool.name, 2).await;
    let (tainted, drained) = (made.0[0].clone(), made.0[1].clone());
    let config = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n";
    let identity = unique("ncache-serve");
    let dir = daemon::tempdir::Dir(std::env::temp_dir().join(unique("ncache-user")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let kubeconfig = audited_kubeconfig(env, &dir.0);
    let kubeconfig = kubeconfig.display().to_string();
    let daemon = Daemon::start_with(
        env,
        &pool.name,
        &unique("ncache-lease"),
        &identity,
        config,
        &[("KUBECONFIG", kubeconfig.as_str())],
    );
    daemon.wait_ready().await;
    wait_for("the node cache synced", Duration::from_secs(60), || async {
        Ok(daemon
            .log()
            .contains("the node cache is synced")
            .then_some(()))
    })
    .await;
    let since = now();

    for _ in 0..3 {
        let entry = plan_of(&daemon, &tainted).await;
        assert_ne!(entry["skipped"]["skip"], json!("disrupted"), "{entry}");
    }
    let good = alert(
        json!({"alertname": "NodeDiskPressure", "node": drained}),
        "2026-11-29T03:00:00Z",
    );
    assert_eq!(daemon.post(Some(TOKEN), good.to_string()).await, 202);
    wait_for(
        "the alert's node claimed",
        Duration::from_secs(60),
        || async {
            let node = get_node(client, &drained).await;
            Ok(node
                .filter(|n| annotation(n, "node-drain.io/state").is_some())
                .map(|_| ()))
        },
    )
    .await;

    let out = std::process::Command::new(env.kubectl())
        .env("KUBECONFIG", env.kubeconfig())
        .args([
            "taint",
            "node",
            &tainted,
            "karpenter.sh/disrupted:NoSchedule",
        ])
        .output()
        .expect("kubectl taint");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let skipped = wait_for(
        "the plan shows the taint",
        Duration::from_secs(10),
        || async {
            let entry = plan_of(&daemon, &tainted).await;
            Ok((entry["skipped"]["skip"] == json!("disrupted")).then_some(entry))
        },
    )
    .await;
    assert_eq!(skipped["skipped"]["skip"], json!("disrupted"), "{skipped}");
    // A reconciliation round (every 10 s) reads the cache too; the audit log
    // is written as requests complete.
    tokio::time::sleep(Duration::from_secs(13)).await;
    let watches = requests_by(env, &identity, "watch", "nodes");
    assert!(
        !watches.is_empty(),
        "the audit log records the daemon's reads (its node watch)"
    );
    let lists = requests_by(env, &identity, "list", "nodes")
        .into_iter()
        .filter(|e| e.received.as_str() >= since.as_str())
        .map(|e| format!("{} {:?} at {}", e.verb, e.object, e.received))
        .collect::<Vec<_>>();
    assert!(
        lists.is_empty(),
        "node LISTs after the cache synced: {lists:#?}\n{}",
        daemon.log()
    );
    drop(daemon);
    drop(made);
    scene.cleanup().await;
}
