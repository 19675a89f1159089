//! `deploy/` is real: its RBAC (`deploy/base/rbac.yaml`) is enough for a whole
//! drain, run as the ServiceAccount through impersonation, and a ServiceAccount
//! without it gets nothing. tests/deploy_rbac.rs asks for each call one by one;
//! tests/deploy_manifests.rs and tests/deploy_helm.rs check the other objects.

mod support;

use std::time::Duration;

use support::*;

const SMALL: Requests = Requests {
    cpu: "1",
    memory: "1Gi",
};

/// The testenv kubeconfig acting as `user` (in `groups`).
fn impersonating_kubeconfig(env: &TestEnv, user: &str, groups: &[&str]) -> tempfile_path::Path {
    let mut config: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(env.kubeconfig()).unwrap()).unwrap();
    let auth = &mut config["users"][0]["user"];
    auth["as"] = serde_norway::Value::from(user);
    auth["as-groups"] = serde_norway::Value::from(
        groups
            .iter()
            .map(|g| serde_norway::Value::from(*g))
            .collect::<Vec<_>>(),
    );
    let path = std::env::temp_dir().join(format!("{}.kubeconfig", unique("as")));
    std::fs::write(&path, serde_norway::to_string(&config).unwrap()).unwrap();
    tempfile_path::Path(path)
}

mod tempfile_path {
    /// A file removed when dropped.
    pub struct Path(pub std::path::PathBuf);
    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_rbac_is_enough_for_a_drain() {
    let env = TestEnv::load();
    let client = env.client().await;
    support::deploy::apply_rbac(&env);

    let ns = TestNamespace::create(&client, "deploy-rbac").await;
    let pool = TestNodePool::create(&client, "deploy-rbac", "c-4x-amd64-linux", None).await;
    let w = Workloads {
        client: &client,
        namespace: &ns.name,
        nodepool: &pool.name,
    };
    w.deployment("web", 1, SMALL, 2).await;
    w.pdb("web", "web", Some(1), None).await;
    let pod = w
        .wait_running("web", 1, Duration::from_secs(120))
        .await
        .remove(0);
    let node = pod.spec.and_then(|s| s.node_name).unwrap();

    let groups = [
        "system:serviceaccounts",
        "system:serviceaccounts:node-drain",
        "system:authenticated",
    ];
    // Without the binding: refused, so the impersonation is real.
    let nobody = impersonating_kubeconfig(&env, "system:serviceaccount:node-drain:nobody", &groups);
    let out = env
        .node_drain()
        .env("KUBECONFIG", &nobody.0)
        .args(["drain", "--nodepool-name", &pool.name, "--nodes", &node])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("forbidden"),
        "{}",
        text(&out.stderr)
    );

    // As node-drain's ServiceAccount: the allocate rate and its plan, then a whole drain, retire included.
    let sa = impersonating_kubeconfig(&env, "system:serviceaccount:node-drain:node-drain", &groups);
    wait_nodepool_cpu_metrics(&env, &pool.name, None, Some(1.0)).await;
    let out = env
        .node_drain()
        .env("KUBECONFIG", &sa.0)
        .args(["karpenter", "allocate-rate", "--nodepool-name", &pool.name])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = env
        .node_drain()
        .env("KUBECONFIG", &sa.0)
        .args([
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &node,
            "--drain-timeout",
            "2m",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "the RBAC in deploy/base/rbac.yaml must be enough:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("NodeClaim") && stdout.contains("deleted"),
        "{stdout}"
    );
    assert!(
        !stderr.contains("could not record an Event"),
        "Events are allowed too:\n{stderr}"
    );
    ns.delete().await;
    pool.delete().await;
}
