//! What the `deploy/` manifest tests share: the kustomizations, and the
//! pieces of a rendered workload they read (its pod template, container,
//! env, mounts, and its args as node-drain's own CLI parses them).

use clap::Parser;
use serde_json::Value;

use node_drain::cli::{Cli, Command};

/// The base and every overlay of `deploy/`.
pub const KUSTOMIZATIONS: [&str; 4] = [
    "deploy",
    "deploy/overlays/cronjob",
    "deploy/overlays/retire-node",
    "deploy/overlays/graceful",
];

/// The pod template of a Deployment or a CronJob.
pub fn workload_pod_spec(workload: &Value) -> &Value {
    workload
        .pointer("/spec/template/spec")
        .or_else(|| workload.pointer("/spec/jobTemplate/spec/template/spec"))
        .expect("a pod template")
}

pub fn container(workload: &Value) -> &Value {
    &workload_pod_spec(workload)["containers"][0]
}

/// The value of a plain `env` entry.
pub fn env_value(workload: &Value, name: &str) -> Option<String> {
    container(workload)["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .map(str::to_string)
}

/// The daemon's args as node-drain's own CLI reads them.
pub fn serve_args(deployment: &Value) -> node_drain::cli::ServeArgs {
    let args: Vec<String> = container(deployment)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("a string arg").to_string())
        .collect();
    let cli = Cli::try_parse_from(std::iter::once("node-drain".to_string()).chain(args.clone()))
        .unwrap_or_else(|e| panic!("{args:?} do not parse: {e}"));
    match cli.command {
        Command::Serve(serve) => serve,
        other => panic!("the Deployment runs {other:?}, not serve"),
    }
}

/// The mount path of the volume named `volume`.
pub fn mount(workload: &Value, volume: &str) -> String {
    container(workload)["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["name"] == volume)
        .and_then(|m| m["mountPath"].as_str())
        .unwrap_or_else(|| panic!("no mount of {volume}"))
        .to_string()
}
