//! The plan against the real Prometheus behind a Mimir-like tenant gate:
//! unusable answers (unreachable, no tenant, no data, a bad request, NaN) fail
//! closed with exit 3 and no plan; bad usage is exit 2. A dry run that changes
//! nothing and names the oldest nodes: `plan_dry_run.rs`. The allocate rates:
//! `allocate_rate.rs`.

mod support;

use std::sync::{Arc, Mutex};

use support::http::{serve, Request, Response};
use support::run_node_drain as run;
use support::*;

/// A Mimir-like tenant gate in front of the real Prometheus: no X-Scope-OrgID is
/// a 401 "no org id" (as Mimir answers), `tenant-a` is forwarded, a tenant with
/// no data gets an empty result; `bad-request` and `nan` give Prometheus-shaped
/// answers for those paths. It records every tenant header it saw.
async fn mimir_gate(
    prometheus: String,
    seen: Arc<Mutex<Vec<Option<String>>>>,
) -> support::http::Server {
    serve(move |req: Request| {
        let prometheus = prometheus.clone();
        let seen = seen.clone();
        async move {
            let org = req.header("X-Scope-OrgID").map(str::to_string);
            seen.lock().unwrap().push(org.clone());
            let target = req.target.strip_prefix("/prometheus").unwrap_or(&req.target).to_string();
            match org.as_deref() {
                None => Response::new(401, "text/plain", "no org id\n"),
                Some("tenant-a") => {
                    let answer = reqwest::get(format!("{prometheus}{target}")).await.unwrap();
                    let status = answer.status().as_u16();
                    Response::new(status, "application/json", answer.bytes().await.unwrap().to_vec())
                }
                Some("bad-request") => Response::new(
                    400,
                    "application/json",
                    r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:1: parse error"}"#,
                ),
                Some("nan") => Response::new(
                    200,
                    "application/json",
                    r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"karpenter_nodepools_usage"},"value":[1,"NaN"]}]}}"#,
                ),
                Some(_) => Response::new(200, "application/json", r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_prometheus_answers_fail_closed_with_exit_3_and_no_plan() {
    let env = TestEnv::load();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let gate = mimir_gate(env.prometheus_url(), seen.clone()).await;
    let mimir = format!("{}/prometheus", gate.url());
    let prometheus_404 = format!("{}/nope", env.prometheus_url());
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "Prometheus down",
            vec!["--prometheus-address", "http://127.0.0.1:9"],
            "is unreachable",
        ),
        (
            "Mimir without a tenant",
            vec!["--prometheus-address", &mimir, "--prometheus-org-id", ""],
            "answered 401 \\\"no org id",
        ),
        (
            "Mimir, a tenant with no data",
            vec![
                "--prometheus-address",
                &mimir,
                "--prometheus-org-id",
                "tenant-b",
            ],
            "returned no series",
        ),
        (
            "Prometheus' own 400",
            vec![
                "--prometheus-address",
                &mimir,
                "--prometheus-org-id",
                "bad-request",
            ],
            "HTTP 400",
        ),
        (
            "NaN",
            vec!["--prometheus-address", &mimir, "--prometheus-org-id", "nan"],
            "not a finite number",
        ),
        (
            "a wrong path",
            vec!["--prometheus-address", &prometheus_404],
            "HTTP 404",
        ),
        (
            "a NodePool with no metrics",
            vec!["--nodepool-name", "no-such-nodepool"],
            "returned no series",
        ),
    ];
    for (name, extra, expected) in cases {
        for command in [
            vec!["karpenter", "allocate-rate"],
            vec!["drain", "--dry-run"],
        ] {
            let mut args = command.clone();
            if !extra.contains(&"--nodepool-name") {
                args.extend(["--nodepool-name", "some-pool"]);
            }
            args.extend(extra.iter().copied());
            let out = run(&env, &args).await;
            let stderr = text(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(3),
                "{name} ({command:?}): exit code; stderr:\n{stderr}"
            );
            assert!(
                stderr.contains(expected),
                "{name} ({command:?}): expected {expected:?} in:\n{stderr}"
            );
            assert!(
                out.stdout.is_empty(),
                "{name} ({command:?}): no plan may be printed, got:\n{}",
                text(&out.stdout)
            );
        }
    }
    {
        let seen = seen.lock().unwrap();
        assert!(seen.contains(&None), "the empty org id sends no header");
        assert!(
            seen.contains(&Some("tenant-b".into())),
            "the org id is sent as X-Scope-OrgID"
        );
        assert!(!seen.contains(&Some("".into())), "never an empty header");
    }

    // The prefix /prometheus and the tenant header reach the real Prometheus.
    let out = run(
        &env,
        &[
            "karpenter",
            "allocate-rate",
            "--prometheus-address",
            &mimir,
            "--prometheus-org-id",
            "tenant-a",
            "--nodepool-name",
            "no-such-nodepool",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("returned no series"),
        "{}",
        text(&out.stderr)
    );

    // Bad usage is exit 2, before anything is asked.
    let out = run(
        &env,
        &["karpenter", "allocate-rate", "--nodepool-name", "Bad'Name"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = run(
        &env,
        &[
            "karpenter",
            "allocate-rate",
            "--prometheus-address",
            "localhost:9090",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
