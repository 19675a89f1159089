//! Driven by the real VPA updater (`k8s.io/autoscaler/vertical-pod-autoscaler`
//! v1.8.1's `pkg/updater`, built by `testenv/build`), run out of cluster
//! against testenv: a VerticalPodAutoscaler (`updateMode: Recreate`) whose
//! status recommendation the test writes (no recommender) asks for more than
//! the pods request, so the updater evicts; the webhook takes the eviction
//! over and the pod is replaced before it goes. No admission controller:
//! `--use-admission-controller-status=false`, and the replacement keeps the
//! old requests, so the updater would go on evicting: it is stopped after
//! the first pod is gone. It runs as the testenv's admin user, which the
//! test's config names among `evictingUsers` (charts rename the updater's
//! ServiceAccount: it is config).

#[path = "support/graceful.rs"]
mod graceful_support;
mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use graceful_support::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::json;
use support::*;

/// The directory holding `vpa-updater` (and `../vpa-crds`): the running
/// testenv's, or, when it was built before the updater was, what
/// `testenv/build` (cheap on a warm cache) prints.
fn vpa_bin(env: &TestEnv) -> PathBuf {
    let bin = PathBuf::from(env.var("TESTENV_BIN"));
    if bin.join("vpa-updater").exists() {
        return bin;
    }
    let build = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testenv/build");
    let out = Command::new(build).output().expect("run testenv/build");
    assert!(out.status.success(), "testenv/build: {}", text(&out.stderr));
    PathBuf::from(text(&out.stdout).trim())
}

/// The updater's process, killed when dropped; its log beside.
struct Updater(Child, PathBuf);

impl Drop for Updater {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.1).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "---- vpa-updater log (last lines, newest first) ----\n{}",
                tail.join("\n")
            );
        }
        let _ = std::fs::remove_file(&self.1);
    }
}

fn install_crds(env: &TestEnv, bin: &std::path::Path) {
    let crds = bin.join("../vpa-crds");
    let kubectl = |args: &[&str]| {
        let out = Command::new(env.kubectl())
            .env("KUBECONFIG", env.kubeconfig())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            text(&out.stderr)
        );
    };
    kubectl(&["apply", "--server-side", "-f", crds.to_str().unwrap()]);
    kubectl(&[
        "wait",
        "--for=condition=established",
        "--timeout=60s",
        "crd/verticalpodautoscalers.autoscaling.k8s.io",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_vpa_updaters_eviction_is_replaced_before_the_pod_goes() {
    let env = TestEnv::load();
    let bin = vpa_bin(&env);
    install_crds(&env, &bin);
    let scene = Scene::new("graceful-vpa", "c-4x-amd64-linux", None).await;
    let (client, ns) = (&scene.client, &scene.ns.name);
    let me = whoami(client).await;
    let section = format!("{}  evictingUsers: ['{me}']\n", section(ns, 3));
    let (webhook, daemon) = serve_graceful(&scene, &section).await;
    let _log = LogOnPanic::of(&daemon);
    let w = scene.workloads();
    managed_deployment(&w, "web", 3, true).await;
    w.pdb("web-budget", "web", Some(1), None).await;
    let before = w.wait_running("web", 3, Duration::from_secs(180)).await;
    wait_ready_endpoints(client, ns, "web", 3).await;

    let gvk = GroupVersionKind::gvk("autoscaling.k8s.io", "v1", "VerticalPodAutoscaler");
    let vpas: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "verticalpodautoscalers"),
    );
    let vpa = json!({
        "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "updatePolicy": {"updateMode": "Recreate"}}
    });
    let ssa = PatchParams::apply("graceful-vpa-test").force();
    vpas.patch("web", &ssa, &Patch::Apply(&vpa))
        .await
        .expect("create the VPA");
    // The recommender's part, written by hand: far above the pods' 100m/128Mi.
    let want = json!({"cpu": "500m", "memory": "512Mi"});
    let status = json!({"status": {
        "recommendation": {"containerRecommendations": [{"containerName": "app",
            "target": want, "lowerBound": want, "upperBound": want, "uncappedTarget": want}]},
        "conditions": [{"type": "RecommendationProvided", "status": "True",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    }});
    vpas.patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("write the recommendation");

    let sampler = Sampler::start(client, ns, "web");
    let log = std::env::temp_dir().join(format!("{}.vpa-updater.log", ns));
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(bin.join("vpa-updater"))
        .args([
            &format!("--kubeconfig={}", env.kubeconfig()),
            &format!("--vpa-object-namespace={ns}"),
            "--updater-interval=2s",
            "--min-replicas=2",
            "--use-admission-controller-status=false",
            "--address=127.0.0.1:0",
            "--v=4",
        ])
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .expect("start vpa-updater");
    let updater = Updater(child, log.clone());

    // The updater's eviction, taken over: a pod is marked, then replaced.
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let marked = wait_for(
        "the updater's eviction taken over",
        Duration::from_secs(120),
        || async {
            let list = pods
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            Ok(list
                .items
                .into_iter()
                .find(|p| label(p, "node-drain.io/graceful") == Some("draining")))
        },
    )
    .await;
    let name = marked.metadata.name.clone().unwrap();
    assert!(
        before.iter().any(|p| p.metadata.uid == marked.metadata.uid),
        "one of the original pods"
    );
    wait_deleted(client, ns, &name, Duration::from_secs(120)).await;
    drop(updater);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let samples = sampler.take();
    drop(sampler);
    let evictions = std::fs::read_to_string(&log).unwrap_or_default();
    let by_updater = daemon
        .log()
        .lines()
        .filter(|l| l.contains(&format!("user=\"{me}\"")) && l.contains("outcome=\"graceful\""))
        .count();
    assert!(by_updater >= 1, "the webhook saw the updater's eviction");
    let lowest = samples.iter().map(|s| s.ready.len()).min().unwrap();
    assert!(
        lowest >= 3,
        "ready endpoints fell to {lowest}: {:?}\n{evictions}",
        samples.iter().map(|s| s.ready.len()).collect::<Vec<_>>()
    );
    let _ = vpas.delete("web", &Default::default()).await;
    drop(daemon);
    drop(webhook);
    scene.cleanup().await;
}
