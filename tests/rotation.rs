//! `node-drain drain --rotate` on the real test environment (Karpenter + KWOK):
//! a NodePool of 6 nodes rotated under a budget of 2, capacity first, sampled
//! at 4 Hz. Preflight and blocked nodes: `rotation_preflight.rs`; a rotation
//! killed between waves: `rotation_resume.rs`.

mod support;

use std::time::Duration;

use serde_json::json;
use support::rotation::*;
use support::*;

const ONE_CPU: Requests = Requests {
    cpu: "1",
    memory: "1Gi",
};

/// `ROTATION_TEST_CAPACITY_FIRST=false` runs the same test with plain waves:
/// how the min-ready assertion was seen to fail without capacity first.
fn capacity_first() -> String {
    std::env::var("ROTATION_TEST_CAPACITY_FIRST").unwrap_or_else(|_| "true".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_nodes_rotate_in_waves_of_two_capacity_first_and_the_app_never_dips() {
    let scene = Scene::new("rot-six", "c-4x-amd64-linux", Some(json!([{"nodes": "2"}]))).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    // One 1-CPU pod per node (hostname anti-affinity): 6 nodes at 25 %, so
    // the formula allows 4 and the budget caps each wave at 2. An evicted pod
    // fits on no other original node: without new capacity it waits.
    w.spread_deployment("web", 6, ONE_CPU).await;
    w.pdb("web", "web", Some(1), None).await;
    let originals: Vec<String> = pool
        .wait_ready_nodes(6, Duration::from_secs(180))
        .await
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    w.wait_running("web", 6, Duration::from_secs(60)).await;
    wait_nodepool_cpu_metrics(env, &pool.name, Some(24.0), None).await;

    let sampler = PoolSampler::start(
        client,
        &pool.name,
        &ns.name,
        "web",
        Duration::from_millis(250),
    );
    let started = std::time::Instant::now();
    let out = run_node_drain(
        env,
        &[
            "drain",
            "--rotate",
            "--nodepool-name",
            &pool.name,
            "--placeholder-namespace",
            &ns.name,
            "--capacity-first",
            &capacity_first(),
            "--drain-timeout",
            "3m",
            "--capacity-timeout",
            "2m",
        ],
    )
    .await;
    let elapsed = started.elapsed();
    let samples = sampler.stop().await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "rotation failed:\n{stdout}\n{stderr}"
    );
    eprintln!("rotation took {elapsed:.1?}:\n{stdout}");

    // Every original node replaced, the pool back at 6 Ready nodes.
    assert!(
        stdout.contains("finished") && stdout.contains(": 6 replaced, 0 skipped, 3 wave(s)"),
        "{stdout}"
    );
    let now = pool.wait_ready_nodes(6, Duration::from_secs(120)).await;
    let names: Vec<String> = now.iter().filter_map(|n| n.metadata.name.clone()).collect();
    for original in &originals {
        assert!(
            !names.contains(original),
            "{original} still there: {names:?}"
        );
    }
    w.wait_running("web", 6, Duration::from_secs(60)).await;

    // The worst moments, at 4 Hz.
    let hz = rate_hz(&samples);
    assert!(hz >= 2.0, "sampled at {hz:.1} Hz");
    let starts = wave_starts(&samples);
    let min = min_ready(&samples);
    eprintln!(
        "{} samples at {hz:.1} Hz; waves started at {:?}; max disrupted {}; min ready {min}",
        samples.len(),
        starts.iter().map(|&i| samples[i].at).collect::<Vec<_>>(),
        max_disrupted(&samples)
    );
    let dips: Vec<String> = samples
        .iter()
        .filter(|s| s.ready < 6 || s.deployment_ready < 6)
        .map(|s| {
            format!(
                "{:.2}s: {} Ready pods, readyReplicas {}, pending {:?}",
                s.at.as_secs_f64(),
                s.ready,
                s.deployment_ready,
                s.pending
            )
        })
        .collect();
    let deployment_min = min_deployment_ready(&samples);
    eprintln!("samples below 6: {dips:#?}");
    assert!(starts.len() >= 3, "waves seen: {starts:?}");
    assert!(
        max_disrupted(&samples) <= 2,
        "more than 2 nodes disrupted: {:?}",
        samples.iter().max_by_key(|s| s.disrupted.len())
    );
    for &i in &starts {
        assert!(
            samples[i - 1].pending.is_empty(),
            "a wave started at {:?} while {:?} were Pending",
            samples[i].at,
            samples[i - 1].pending
        );
    }
    // The PDB's floor (maxUnavailable 1 of 6), counted pod by pod: an evicted
    // pod is not counted from its deletion, its replacement from when it is Ready.
    assert!(min >= 5, "below the PDB's floor: {min} Ready pods");
    // Capacity first: every replacement finds its node waiting and is Ready
    // within the time an eviction takes to be replaced at all (tens of ms, so
    // at most one sample ever sees it: 2 runs of 4 saw none). Without it the
    // replacements wait for Karpenter, Pending for seconds: ~10 samples in a row.
    let longest = longest_dip(&samples, 6);
    assert!(
        longest <= 1,
        "the Deployment stayed below 6 ready replicas for {longest} samples in a row (min {deployment_min}): {dips:#?}"
    );

    // Nothing left behind: no placeholder, no record on the NodePool.
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::all(client.clone());
    let left = pods
        .list(
            &kube::api::ListParams::default()
                .labels(&format!("node-drain.io/placeholder={}", pool.name)),
        )
        .await
        .unwrap();
    assert!(left.items.is_empty(), "placeholders left behind");
    let record = nodepool_annotation(client, &pool.name, "node-drain.io/rotation").await;
    assert_eq!(record, None, "the finished rotation's record is removed");
    scene.cleanup().await;
}
