//! What the deploy tests share: `kubectl` and `helm` runs, the objects
//! `deploy/` renders (kubectl's kustomize) and the chart renders (`helm
//! template`) as data, the real `node-drain` namespace with its RBAC, and
//! `kubectl auth can-i` as a ServiceAccount.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde::Deserialize;
use serde_json::Value;

use super::{text, TestEnv};

/// The namespace every object of `deploy/` lives in.
pub const NAMESPACE: &str = "node-drain";
/// node-drain's ServiceAccount as the API server names it.
pub const SERVICE_ACCOUNT: &str = "system:serviceaccount:node-drain:node-drain";

/// The repository (the deploy manifests are read from the checkout under test).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cmd`, feeding `stdin` when given.
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("wait for the command")
}

pub fn kubectl(env: &TestEnv, args: &[&str]) -> Output {
    kubectl_with_input(env, args, None)
}

pub fn kubectl_with_input(env: &TestEnv, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env.kubectl());
    cmd.env("KUBECONFIG", env.kubeconfig()).args(args);
    run(&mut cmd, stdin)
}

/// The stdout of a command that must succeed; else a panic with its stderr.
pub fn succeeded(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stderr),
        text(&out.stdout)
    );
    text(&out.stdout)
}

/// The `Warning:` lines of a kubectl run (Pod Security, deprecations).
pub fn warnings(out: &Output) -> Vec<String> {
    text(&out.stderr)
        .lines()
        .filter(|l| l.contains("Warning:"))
        .map(str::to_string)
        .collect()
}

/// helm, built by `testenv/build` (HELM_VERSION): in the bin dir this checkout's
/// testenv/versions.env names, else in the running environment's.
pub fn helm(env: &TestEnv) -> PathBuf {
    let out = run(
        Command::new(repo().join("testenv/build")).arg("--print"),
        None,
    );
    let mut candidates = vec![PathBuf::from(env.var("TESTENV_BIN")).join("helm")];
    if out.status.success() {
        candidates.insert(0, PathBuf::from(text(&out.stdout).trim()).join("helm"));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| panic!("helm is missing ({candidates:?}): run `testenv/build`"))
}

pub fn helm_run(env: &TestEnv, args: &[&str]) -> Output {
    run(Command::new(helm(env)).args(args), None)
}

/// The chart's directory.
pub fn chart() -> String {
    repo().join("deploy/helm/node-drain").display().to_string()
}

/// What `kubectl kustomize` renders for `dir` (relative to the repository).
pub fn kustomize(env: &TestEnv, dir: &str) -> String {
    let path = repo().join(dir).display().to_string();
    succeeded(
        kubectl(env, &["kustomize", &path]),
        &format!("kubectl kustomize {dir}"),
    )
}

/// What `helm template` renders with `values` (each `key=value`, as `--set`).
pub fn helm_template(env: &TestEnv, values: &[&str]) -> String {
    let chart = chart();
    let mut args = vec!["template", "node-drain", chart.as_str()];
    for v in values {
        args.extend(["--set", v]);
    }
    succeeded(helm_run(env, &args), &format!("helm template {values:?}"))
}

/// The objects of a multi-document YAML stream.
pub fn objects(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("a YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

/// Objects by (kind, name); a second object of the same kind and name fails.
pub fn by_kind_and_name(objects: &[Value]) -> BTreeMap<(String, String), Value> {
    let mut map = BTreeMap::new();
    for o in objects {
        let key = (str_at(o, "/kind"), str_at(o, "/metadata/name"));
        assert!(
            map.insert(key.clone(), o.clone()).is_none(),
            "{key:?} rendered twice"
        );
    }
    map
}

/// The one object of `kind` named `name`.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| str_at(o, "/kind") == kind && str_at(o, "/metadata/name") == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

/// A string at a JSON pointer ("" when absent).
pub fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The objects as JSON, one document per object, for `kubectl apply -f -`.
pub fn to_stdin(objects: &[Value]) -> Vec<u8> {
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
    serde_json::to_vec(&list).expect("serialize a List")
}

/// Applies `deploy/base/rbac.yaml` for real: the namespace `node-drain`
/// (labelled restricted), the ServiceAccount and its RBAC. Idempotent, and
/// what the image test applies too.
pub fn apply_rbac(env: &TestEnv) {
    let path = repo().join("deploy/base/rbac.yaml").display().to_string();
    succeeded(
        kubectl(env, &["apply", "-f", &path]),
        "kubectl apply -f deploy/base/rbac.yaml",
    );
}

/// `kubectl apply --dry-run=server` of `objects`.
pub fn dry_run(env: &TestEnv, objects: &[Value]) -> Output {
    kubectl_with_input(
        env,
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&to_stdin(objects)),
    )
}

/// Who asks: a ServiceAccount with the groups its token carries.
pub fn as_service_account(user: &str) -> Vec<String> {
    let namespace = user.split(':').nth(2).unwrap_or_default();
    vec![
        format!("--as={user}"),
        "--as-group=system:serviceaccounts".into(),
        format!("--as-group=system:serviceaccounts:{namespace}"),
        "--as-group=system:authenticated".into(),
    ]
}

/// One answer of `kubectl auth can-i <question>` as `user`, e.g.
/// `"update leases.coordination.k8s.io/node-drain -n node-drain"` or
/// `"delete nodes -A"` (a cluster-scoped question asks about every namespace).
pub fn can_i(env: &TestEnv, user: &str, question: &str) -> bool {
    let mut args: Vec<String> = vec!["auth".into(), "can-i".into()];
    args.extend(question.split_whitespace().map(str::to_string));
    args.extend(as_service_account(user));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = kubectl(env, &args);
    match (out.status.code(), text(&out.stdout).trim()) {
        (Some(0), "yes") => true,
        (Some(1), answer) if answer.starts_with("no") => false,
        _ => panic!(
            "kubectl auth can-i {question}: no answer ({}):\n{}\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        ),
    }
}

/// The questions whose answer is not `expected`, each with what it got.
pub fn wrong_answers(env: &TestEnv, user: &str, questions: &[&str], expected: bool) -> Vec<String> {
    let answer = |yes: bool| if yes { "yes" } else { "no" };
    questions
        .iter()
        .filter(|q| can_i(env, user, q) != expected)
        .map(|q| {
            format!(
                "{user} can-i {q}: {} (must be {})",
                answer(!expected),
                answer(expected)
            )
        })
        .collect()
}

/// The RBAC objects of a render (ServiceAccount, ClusterRole, Role and their
/// bindings), applied under a unique name in the same namespace, rules
/// untouched: a ServiceAccount whose permissions are exactly the render's,
/// whatever else applies to the shared `node-drain` one meanwhile.
pub struct RbacCopy<'a> {
    /// The copy's ServiceAccount as the API server names it.
    pub user: String,
    _cleanup: Cleanup<'a>,
}

pub fn apply_rbac_copy<'a>(env: &'a TestEnv, rendered: &[Value]) -> RbacCopy<'a> {
    let name = super::unique("node-drain-rbac");
    let mut copies = Vec::new();
    let mut cleanup = Cleanup {
        env,
        objects: Vec::new(),
    };
    for object in rendered {
        let kind = str_at(object, "/kind");
        let namespaced = match kind.as_str() {
            "ServiceAccount" | "Role" | "RoleBinding" => true,
            "ClusterRole" | "ClusterRoleBinding" => false,
            _ => continue,
        };
        // `node-drain-graceful` (an overlay's second ClusterRole) becomes
        // `<copy>-graceful`: each role keeps a copy of its own.
        let renamed = |original: &str| {
            format!(
                "{name}{}",
                original.strip_prefix("node-drain").unwrap_or(original)
            )
        };
        let own = renamed(&str_at(object, "/metadata/name"));
        let mut copy = object.clone();
        copy["metadata"] = if namespaced {
            serde_json::json!({"name": own, "namespace": NAMESPACE})
        } else {
            serde_json::json!({"name": own})
        };
        if copy.get("roleRef").is_some() {
            copy["roleRef"]["name"] = Value::from(renamed(&str_at(object, "/roleRef/name")));
            copy["subjects"] = serde_json::json!([
                {"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}
            ]);
        }
        cleanup.objects.push((
            namespaced.then_some(NAMESPACE),
            format!("{}/{own}", kind.to_lowercase()),
        ));
        copies.push(copy);
    }
    succeeded(
        kubectl_with_input(env, &["apply", "-f", "-"], Some(&to_stdin(&copies))),
        "apply a copy of the rendered RBAC",
    );
    let user = format!("system:serviceaccount:{NAMESPACE}:{name}");
    // The authorizer sees new bindings a moment after they are created.
    let role = rendered.iter().any(|o| str_at(o, "/kind") == "Role");
    let seen = || {
        can_i(env, &user, "get nodes -A")
            && (!role
                || can_i(
                    env,
                    &user,
                    "create leases.coordination.k8s.io -n node-drain",
                ))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !seen() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    RbacCopy {
        user,
        _cleanup: cleanup,
    }
}

/// Deletes the named objects when dropped (`kind/name`, `-n` when namespaced).
pub struct Cleanup<'a> {
    pub env: &'a TestEnv,
    pub objects: Vec<(Option<&'static str>, String)>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for (namespace, object) in &self.objects {
            let mut args = vec!["delete", "--ignore-not-found", "--wait=false", object];
            if let Some(ns) = namespace {
                args.extend(["-n", ns]);
            }
            let _ = kubectl(self.env, &args);
        }
    }
}
