//! `rotate`: the preflight of a NodePool's rotation (a dry run, any replica),
//! or the rotation started on the leader's registry of running rotations.

use serde_json::{json, Value};

use super::commands::available;
use crate::error::{Error, Result};
use crate::ingress::intake::Daemon;

pub async fn rotate(daemon: &Daemon, nodepool: &str, dry_run: bool, by: String) -> Result<Value> {
    daemon.managed(nodepool)?;
    if dry_run {
        let preflight = daemon.rotations.preflight(nodepool).await?;
        return Ok(json!({ "preflight": preflight }));
    }
    available(daemon).map_err(|e| Error::Usage(format!("{e} (rotate acts on the leader only)")))?;
    daemon
        .rotations
        .start(nodepool, daemon.settings(None), by)
        .await
}
