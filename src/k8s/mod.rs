//! Every call node-drain makes to the Kubernetes API: the client (`client`),
//! Nodes (`nodes`), Pods and the watch of a node's pods (`pods`), Events
//! (`events`) and Karpenter's objects (`karpenter`). Decisions live elsewhere;
//! these functions only talk to the API server and name what failed.

pub mod client;
pub mod events;
pub mod fence;
pub mod karpenter;
pub mod lease;
pub mod node_cache;
pub mod nodes;
pub mod pods;
pub mod role_label;

pub use client::{client, USER_AGENT};

/// The HTTP code of an API error, if the API server answered.
pub fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// A delete whose object is already gone is done.
pub fn gone_is_ok<T>(result: kube::Result<T>) -> kube::Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if api_code(&e) == Some(404) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether an error is worth retrying: no answer, or a 5xx / 429 from the API server.
pub fn transient(e: &kube::Error) -> bool {
    match api_code(e) {
        Some(code) => code == 429 || code >= 500,
        None => true,
    }
}
