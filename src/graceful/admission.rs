//! The admission webhook's decisions on `CREATE pods/eviction`, without IO:
//! the AdmissionReview in, which eviction is a candidate (`screen`), and the
//! three answers out — allowed unchanged, refused as the API would (429
//! naming the PodDisruptionBudget, so the evicter retries later), or allowed
//! as a dry run (a JSONPatch on `deleteOptions.dryRun`: the evicter sees
//! success, the pod stays, and node-drain drains it gracefully).

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::config::GracefulConfig;

#[derive(Debug, Deserialize)]
pub struct AdmissionReview {
    pub request: Option<AdmissionRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub resource: Resource,
    #[serde(default)]
    pub sub_resource: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub user_info: UserInfo,
    #[serde(default)]
    pub dry_run: bool,
    /// The Eviction.
    #[serde(default)]
    pub object: Value,
}

#[derive(Debug, Default, Deserialize)]
pub struct Resource {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub resource: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct UserInfo {
    #[serde(default)]
    pub username: String,
}

/// Why an eviction is left alone (logged and counted), or the pod to look at.
#[derive(Debug, PartialEq, Eq)]
pub enum Screen {
    Pass(&'static str),
    Candidate { namespace: String, name: String },
}

/// The checks that need nothing but the request and the config.
pub fn screen(request: &AdmissionRequest, config: &GracefulConfig) -> Screen {
    let eviction = request.operation == "CREATE"
        && request.resource.group.is_empty()
        && request.resource.resource == "pods"
        && request.sub_resource == "eviction";
    if !eviction {
        return Screen::Pass("not-an-eviction");
    }
    // Our own PDB check is a dry run, and a dry run must have no side effect
    // (the webhook is `sideEffects: NoneOnDryRun`).
    if request.dry_run || dry_run_already(&request.object) {
        return Screen::Pass("dry-run");
    }
    if !config.user_evicts(&request.user_info.username) {
        return Screen::Pass("other-user");
    }
    if !config.namespace_included(&request.namespace) {
        return Screen::Pass("namespace-excluded");
    }
    if request.name.is_empty() {
        return Screen::Pass("no-name");
    }
    Screen::Candidate {
        namespace: request.namespace.clone(),
        name: request.name.clone(),
    }
}

fn dry_run_already(eviction: &Value) -> bool {
    eviction["deleteOptions"]["dryRun"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
}

fn review(response: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

/// Let the eviction through as it is.
pub fn unchanged(uid: &str) -> Value {
    review(json!({"uid": uid, "allowed": true}))
}

/// Refuse it as the Eviction API did for node-drain's own dry run: same
/// code (429), reason and details; the message names the PDB (the API puts
/// its name in the details' causes only).
pub fn refused(uid: &str, status: &kube::core::Status) -> Value {
    let mut status = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
    let causes: Vec<String> = status["details"]["causes"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c["message"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut message = status["message"].as_str().unwrap_or("").to_string();
    if !causes.is_empty() {
        message = format!("{message} {}", causes.join("; "));
    }
    status["message"] = json!(message.trim());
    status["code"] = json!(429);
    status["status"] = json!("Failure");
    review(json!({"uid": uid, "allowed": false, "status": status}))
}

/// The JSONPatch that turns the Eviction into a dry run.
pub fn dry_run_patch(eviction: &Value) -> Value {
    if eviction.get("deleteOptions").is_some_and(Value::is_object) {
        json!([{"op": "add", "path": "/deleteOptions/dryRun", "value": ["All"]}])
    } else {
        json!([{"op": "add", "path": "/deleteOptions", "value": {"dryRun": ["All"]}}])
    }
}

/// Allow the eviction as a dry run: the evicter sees success.
pub fn as_dry_run(uid: &str, eviction: &Value) -> Value {
    let patch = serde_json::to_vec(&dry_run_patch(eviction)).unwrap_or_default();
    review(json!({
        "uid": uid,
        "allowed": true,
        "patchType": "JSONPatch",
        "patch": base64::engine::general_purpose::STANDARD.encode(patch),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(user: &str, namespace: &str, object: Value) -> AdmissionRequest {
        serde_json::from_value(json!({
            "uid": "u-1", "operation": "CREATE",
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "subResource": "eviction", "name": "web-1", "namespace": namespace,
            "userInfo": {"username": user, "groups": ["system:serviceaccounts"]},
            "object": object, "dryRun": false
        }))
        .unwrap()
    }

    const VPA: &str = "system:serviceaccount:kube-system:vpa-updater";

    #[test]
    fn only_the_configured_users_evictions_in_included_namespaces_are_candidates() {
        let c = GracefulConfig::default();
        let eviction =
            json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-1"}});
        assert_eq!(
            screen(&request(VPA, "shop", eviction.clone()), &c),
            Screen::Candidate {
                namespace: "shop".into(),
                name: "web-1".into()
            }
        );
        assert_eq!(
            screen(&request("kubectl-user", "shop", eviction.clone()), &c),
            Screen::Pass("other-user")
        );
        assert_eq!(
            screen(&request(VPA, "kube-system", eviction.clone()), &c),
            Screen::Pass("namespace-excluded")
        );
        let dry = json!({"deleteOptions": {"dryRun": ["All"]}});
        assert_eq!(
            screen(&request(VPA, "shop", dry), &c),
            Screen::Pass("dry-run")
        );
        let mut r = request(VPA, "shop", eviction.clone());
        r.dry_run = true;
        assert_eq!(screen(&r, &c), Screen::Pass("dry-run"));
        let mut r = request(VPA, "shop", eviction);
        r.sub_resource = "status".into();
        assert_eq!(screen(&r, &c), Screen::Pass("not-an-eviction"));
    }

    #[test]
    fn the_dry_run_patch_applies_with_or_without_delete_options() {
        for eviction in [
            json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}}),
            json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"},
                   "deleteOptions": {"preconditions": {"uid": "x"}}}),
        ] {
            let answer = as_dry_run("u-1", &eviction);
            assert_eq!(answer["response"]["allowed"], true);
            assert_eq!(answer["response"]["patchType"], "JSONPatch");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(answer["response"]["patch"].as_str().unwrap())
                .unwrap();
            let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
            let mut patched = eviction.clone();
            json_patch::patch(&mut patched, &patch).unwrap();
            assert_eq!(patched["deleteOptions"]["dryRun"], json!(["All"]));
            if eviction["deleteOptions"].is_object() {
                assert_eq!(patched["deleteOptions"]["preconditions"]["uid"], "x");
            }
        }
    }

    #[test]
    fn a_pdb_refusal_is_passed_on_as_429_naming_the_pdb() {
        let status: kube::core::Status = serde_json::from_value(json!({
            "status": "Failure", "code": 429, "reason": "TooManyRequests",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "details": {"causes": [{"reason": "DisruptionBudget",
                "message": "The disruption budget web needs 3 healthy pods and has 3 currently"}]}
        }))
        .unwrap();
        let answer = refused("u-1", &status);
        let r = &answer["response"];
        assert_eq!(r["uid"], "u-1");
        assert_eq!(r["allowed"], false);
        assert_eq!(r["status"]["code"], 429);
        assert_eq!(r["status"]["reason"], "TooManyRequests");
        assert!(r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("disruption budget web needs"));
        assert_eq!(
            unchanged("u-2"),
            json!({"apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview", "response": {"uid": "u-2", "allowed": true}})
        );
    }
}
