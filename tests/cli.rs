//! The command line on its own: bad usage and unusable configuration are clear
//! errors with the documented exit codes, and `--log-format json` is JSON lines.

use std::process::Command;

fn node_drain() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_node-drain"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn kube_config_modes_that_cannot_work_say_why_with_exit_2() {
    // In-cluster mode outside a pod.
    let out = node_drain()
        .args([
            "drain",
            "--dry-run",
            "--kube-config",
            "cluster",
            "--nodes",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("kube config (cluster)")
            && stderr(&out).contains("--kube-config local"),
        "{}",
        stderr(&out)
    );
    // A CI job with no kubeconfig: never interactive, a clear error.
    let out = node_drain()
        .env("HOME", std::env::temp_dir().join("node-drain-no-home"))
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .args([
            "drain",
            "--dry-run",
            "--kube-config",
            "github_action",
            "--nodes",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("kube config (github_action)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_flags_and_values_are_usage_errors() {
    for args in [
        vec!["drain", "--drain-timeout", "soon"],
        vec!["drain", "--drain-timeout", "0s"],
        vec!["drain", "--retire", "instance"],
        vec!["drain", "--on-timeout", "panic"],
        vec!["drain", "--eviction-rate", "0"],
        vec!["frobnicate"],
    ] {
        let out = node_drain().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let out = node_drain()
        .args([
            "drain",
            "--slack-webhook-url",
            "not a url SECRET",
            "--nodes",
            "x",
            "--kube-config",
            "cluster",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn json_logs_are_one_object_per_line_with_the_seed_fields() {
    let out = node_drain()
        .args([
            "karpenter",
            "allocate-rate",
            "--log-format",
            "json",
            "--prometheus-address",
            "http://127.0.0.1:9",
            "--nodepool-name",
            "p",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let lines: Vec<serde_json::Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "ERROR"
            && l["error"]
                .as_str()
                .is_some_and(|e| e.contains("unreachable"))),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "Karpenter Allocate Rate 사용량 조회 커맨드를 실행합니다."),
        "{lines:?}"
    );
}
