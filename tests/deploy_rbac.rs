//! The RBAC of `deploy/`, asked of the API server: `kubectl auth can-i` as
//! node-drain's ServiceAccount answers yes for every call node-drain makes
//! (src/k8s/, src/drain/, the leader's Lease and Pod label) and no for what it
//! must not do. Each question is one answer; a wrong rule changes it.
//!
//! The answers are asked of a copy of the rendered RBAC under a unique name
//! (rules untouched): the shared `node-drain` ServiceAccount may meanwhile be
//! bound to more by whoever applies another version of the manifests. The real
//! one is asked too, for everything it must be allowed.

mod support;

use support::deploy::*;
use support::*;

/// Every API call node-drain makes (CLI and daemon).
const MUST: &[&str] = &[
    // Nodes: plan, record intent (annotations), cordon, restore.
    "get nodes -A",
    "list nodes -A",
    "watch nodes -A",
    "patch nodes -A",
    // A node's pods in any namespace: list, watch, read, delete (finished,
    // problem, stuck pods).
    "list pods -A",
    "watch pods -A",
    "get pods -n kube-system",
    "delete pods -n default",
    // The Eviction API, and the PDBs named when it refuses.
    "create pods --subresource=eviction -n default",
    "list poddisruptionbudgets.policy -n default",
    // Events on Nodes (their namespace is `default`), repeated ones patched.
    "create events.events.k8s.io -n default",
    "patch events.events.k8s.io -n default",
    // Karpenter: budgets, the NodeClaim of a node, its retirement.
    "get nodepools.karpenter.sh -A",
    "list nodepools.karpenter.sh -A",
    "get nodeclaims.karpenter.sh -A",
    "list nodeclaims.karpenter.sh -A",
    "delete nodeclaims.karpenter.sh -A",
    // The daemon's leader election: its Lease, in its namespace.
    "create leases.coordination.k8s.io -n node-drain",
    "get leases.coordination.k8s.io/node-drain -n node-drain",
    "update leases.coordination.k8s.io/node-drain -n node-drain",
    // The leader's label on its own Pod, off a former leader's.
    "get pods -n node-drain",
    "list pods -n node-drain",
    "patch pods -n node-drain",
    // Rotation: the record and pause on the NodePool, the placeholders'
    // PriorityClass, the placeholder pods in the daemon's own namespace.
    "patch nodepools.karpenter.sh -A",
    "create priorityclasses.scheduling.k8s.io -A",
    "get priorityclasses.scheduling.k8s.io/node-drain-placeholder -A",
    "create pods -n node-drain",
    "delete pods -n node-drain",
];

/// What it must not do.
const MUST_NOT: &[&str] = &[
    // Secrets: none, anywhere (its own are mounted, never read through the API).
    "get secrets -A",
    "list secrets -A",
    "watch secrets -A",
    "get secrets -n node-drain",
    "list secrets -n kube-system",
    // Pods: it creates none outside its own namespace (a privileged pod would
    // own the node); there, the restricted Pod Security Standard applies.
    "create pods -n default",
    "create pods -n kube-system",
    "update pods -n default",
    // PriorityClasses: only its own is read, none changed.
    "get priorityclasses.scheduling.k8s.io/system-node-critical -A",
    "update priorityclasses.scheduling.k8s.io/node-drain-placeholder -A",
    "delete priorityclasses.scheduling.k8s.io/node-drain-placeholder -A",
    // Nodes: neither created nor deleted (deleting is the retire-node overlay's).
    "create nodes -A",
    "delete nodes -A",
    "update nodes -A",
    // Leases: only its own, in its own namespace.
    "create leases.coordination.k8s.io -n default",
    "create leases.coordination.k8s.io -n kube-node-lease",
    "update leases.coordination.k8s.io/node-drain -n default",
    "update leases.coordination.k8s.io/node-drain -n kube-system",
    "get leases.coordination.k8s.io/other -n node-drain",
    "update leases.coordination.k8s.io/other -n node-drain",
    "delete leases.coordination.k8s.io/node-drain -n node-drain",
    // RBAC: no way to grant itself more.
    "escalate clusterroles.rbac.authorization.k8s.io -A",
    "bind clusterroles.rbac.authorization.k8s.io -A",
    "escalate roles.rbac.authorization.k8s.io -n node-drain",
    "bind roles.rbac.authorization.k8s.io -n node-drain",
    "create clusterrolebindings.rbac.authorization.k8s.io -A",
    "create rolebindings.rbac.authorization.k8s.io -n node-drain",
    "update clusterroles.rbac.authorization.k8s.io/node-drain -A",
    "impersonate serviceaccounts -A",
    "create serviceaccounts --subresource=token -n node-drain",
    // Pod labels only in its own namespace.
    "patch pods -n default",
    "patch pods -n kube-system",
    // Karpenter's intent is Karpenter's.
    "update nodepools.karpenter.sh -A",
    "patch nodeclaims.karpenter.sh -A",
    "create nodeclaims.karpenter.sh -A",
];

#[test]
fn the_service_account_may_make_every_call_node_drain_makes() {
    let env = TestEnv::load();
    apply_rbac(&env);
    let copy = apply_rbac_copy(&env, &objects(&kustomize(&env, "deploy")));
    let mut wrong = wrong_answers(&env, &copy.user, MUST, true);
    wrong.extend(wrong_answers(&env, SERVICE_ACCOUNT, MUST, true));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_service_account_may_not_read_secrets_create_pods_or_nodes_or_grant_itself_more() {
    let env = TestEnv::load();
    apply_rbac(&env);
    let copy = apply_rbac_copy(&env, &objects(&kustomize(&env, "deploy")));
    let wrong = wrong_answers(&env, &copy.user, MUST_NOT, false);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The retire-node overlay adds `nodes delete` and only that.
#[test]
fn the_retire_node_overlay_adds_nodes_delete_and_nothing_else() {
    let env = TestEnv::load();
    apply_rbac(&env);
    let copy = apply_rbac_copy(
        &env,
        &objects(&kustomize(&env, "deploy/overlays/retire-node")),
    );
    let mut wrong = wrong_answers(&env, &copy.user, &["delete nodes -A"], true);
    wrong.extend(wrong_answers(&env, &copy.user, MUST, true));
    let still_not: Vec<&str> = MUST_NOT
        .iter()
        .copied()
        .filter(|q| *q != "delete nodes -A")
        .collect();
    wrong.extend(wrong_answers(&env, &copy.user, &still_not, false));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The CronJob overlay keeps the cluster-wide rules and drops the daemon's
/// namespaced Role: no Lease, no Pod label.
#[test]
fn the_cronjob_overlay_drains_but_holds_no_lease() {
    let env = TestEnv::load();
    apply_rbac(&env);
    let copy = apply_rbac_copy(&env, &objects(&kustomize(&env, "deploy/overlays/cronjob")));
    let daemon_only = [
        "create leases.coordination.k8s.io -n node-drain",
        "get leases.coordination.k8s.io/node-drain -n node-drain",
        "update leases.coordination.k8s.io/node-drain -n node-drain",
        "patch pods -n node-drain",
        "create pods -n node-drain",
    ];
    let drain: Vec<&str> = MUST
        .iter()
        .copied()
        .filter(|q| !daemon_only.contains(q))
        .collect();
    let mut wrong = wrong_answers(&env, &copy.user, &drain, true);
    wrong.extend(wrong_answers(&env, &copy.user, &daemon_only, false));
    wrong.extend(wrong_answers(&env, &copy.user, MUST_NOT, false));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// What the graceful overlay (the admission webhook) adds, and only that.
const GRACEFUL_MUST: &[&str] = &[
    // The replace-first drain: the record, label and ownership patches.
    "patch pods -n default",
    "patch pods -n kube-system",
    // Whether a Service selects pod-template-hash.
    "list services -n default",
    // The webhook's watched cache of PodDisruptionBudgets.
    "watch poddisruptionbudgets.policy -n default",
    // The leader's caBundle, on its own webhook configuration only.
    "get mutatingwebhookconfigurations.admissionregistration.k8s.io/node-drain-graceful -A",
    "patch mutatingwebhookconfigurations.admissionregistration.k8s.io/node-drain-graceful -A",
];

const GRACEFUL_MUST_NOT: &[&str] = &[
    "update pods -n default",
    "create pods -n default",
    "get services -n default",
    "update services -n default",
    "list mutatingwebhookconfigurations.admissionregistration.k8s.io -A",
    "patch mutatingwebhookconfigurations.admissionregistration.k8s.io/other -A",
    "create mutatingwebhookconfigurations.admissionregistration.k8s.io -A",
    "delete mutatingwebhookconfigurations.admissionregistration.k8s.io/node-drain-graceful -A",
    "update mutatingwebhookconfigurations.admissionregistration.k8s.io/node-drain-graceful -A",
    "patch validatingwebhookconfigurations.admissionregistration.k8s.io/node-drain-graceful -A",
    "get replicasets.apps -n default",
];

#[test]
fn the_graceful_overlay_adds_pod_patches_services_list_and_its_own_webhook_configuration() {
    let env = TestEnv::load();
    apply_rbac(&env);
    // The default does not: graceful eviction is the overlay's.
    let plain = apply_rbac_copy(&env, &objects(&kustomize(&env, "deploy")));
    let mut wrong = wrong_answers(&env, &plain.user, GRACEFUL_MUST, false);
    let copy = apply_rbac_copy(&env, &objects(&kustomize(&env, "deploy/overlays/graceful")));
    wrong.extend(wrong_answers(&env, &copy.user, GRACEFUL_MUST, true));
    wrong.extend(wrong_answers(&env, &copy.user, MUST, true));
    wrong.extend(wrong_answers(&env, &copy.user, GRACEFUL_MUST_NOT, false));
    let still_not: Vec<&str> = MUST_NOT
        .iter()
        .copied()
        .filter(|q| !GRACEFUL_MUST.contains(q))
        .collect();
    wrong.extend(wrong_answers(&env, &copy.user, &still_not, false));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
