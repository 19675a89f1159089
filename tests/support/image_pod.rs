//! The image run as a restricted pod of the cluster runs it (`tests/image.rs`):
//! the ServiceAccount's credentials and node-drain's settings laid out as the
//! kubelet mounts them, and the podman options of a pod that is non-root,
//! read-only, without capabilities or privilege escalation.

use std::path::{Path, PathBuf};

use super::daemon::{tempdir, TOKEN};
use super::image::*;
use super::{text, unique, TestEnv};

/// What the kubelet would mount: `account` (token, CA, namespace) and
/// `settings` (webhook token, config); removed with `dir`.
pub struct PodMounts {
    pub dir: tempdir::Dir,
    pub account: PathBuf,
    pub settings: PathBuf,
}

impl PodMounts {
    /// A token of the shipped ServiceAccount in `namespace` (TokenRequest),
    /// the cluster CA, and `config` as node-drain's config.
    pub fn new(env: &TestEnv, namespace: &str, config: &str) -> Self {
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
                namespace,
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
        write_readable(&account.join("namespace"), namespace);
        write_readable(&settings.join("token"), &format!("{TOKEN}\n"));
        write_readable(&settings.join("config.yaml"), config);
        Self {
            dir,
            account,
            settings,
        }
    }
}

/// podman's options for a restricted pod named `hostname`: non-root,
/// read-only root, no capabilities, no privilege escalation; only the admin
/// socket's directory writable; the mounts read-only where the kubelet puts
/// them; in-cluster API access; `vars` as its environment.
pub fn restricted_pod_options(
    env: &TestEnv,
    hostname: &str,
    mounts: &PodMounts,
    vars: &[(&str, &str)],
) -> Vec<String> {
    let mount = |from: &Path, to: &str| format!("{}:{to}:ro", from.display());
    let mut options: Vec<String> = [
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
        &mount(&mounts.account, SERVICE_ACCOUNT_PATH),
        "--volume",
        &mount(&mounts.settings, "/etc/node-drain"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let port = api_server_port(env).to_string();
    let api = [
        ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
        ("KUBERNETES_SERVICE_PORT", port.as_str()),
    ];
    for (name, value) in api.iter().chain(vars) {
        options.push("--env".into());
        options.push(format!("{name}={value}"));
    }
    options
}
