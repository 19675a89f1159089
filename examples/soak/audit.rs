//! The API server's audit log (JSON lines, and the backups its rotation left
//! beside it), narrowed to the soak: ResponseComplete events of the soak's
//! daemons (by the identity their User-Agent ends with) inside the window.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// One request a soak daemon made, as the API server recorded it.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: DateTime<Utc>,
    /// The daemon process (its `POD_NAME`, from the User-Agent's suffix).
    pub identity: String,
    pub verb: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub code: u16,
    /// The pod UID an eviction's precondition names.
    pub uid: Option<String>,
}

impl Request {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.code)
    }
    pub fn is_write(&self) -> bool {
        matches!(self.verb.as_str(), "create" | "update" | "patch" | "delete")
    }
    pub fn is_lease(&self, lease: &str) -> bool {
        self.resource == "leases" && self.name == lease
    }
    pub fn is_eviction(&self) -> bool {
        self.verb == "create" && self.resource == "pods" && self.subresource == "eviction"
    }
    pub fn is_pod_delete(&self) -> bool {
        self.verb == "delete" && self.resource == "pods" && self.subresource.is_empty()
    }
    pub fn describe(&self) -> String {
        let sub = if self.subresource.is_empty() {
            String::new()
        } else {
            format!("/{}", self.subresource)
        };
        format!(
            "{} {}{} {}/{} -> {} by {} at {}",
            self.verb,
            self.resource,
            sub,
            self.namespace,
            self.name,
            self.code,
            self.identity,
            self.at.format("%H:%M:%S%.3f")
        )
    }
}

/// Requests of the daemons whose identity starts with `prefix`, received in
/// [since, until], in order.
pub fn read(
    log: &Path,
    prefix: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> anyhow::Result<Vec<Request>> {
    let dir = log.parent().unwrap_or(Path::new("."));
    let stem = log
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("audit")
        .to_string();
    // The rotation renames the full log to `<stem>-<timestamp>.log`.
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{stem}-")))
        })
        .collect();
    files.sort();
    files.push(log.to_path_buf());
    let tag = format!("({prefix}");
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for line in text.lines().filter(|l| l.contains(&tag)) {
            let Ok(e) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let Some(r) = request(&e, prefix).filter(|r| r.at >= since && r.at <= until) {
                out.push(r);
            }
        }
    }
    out.sort_by_key(|r| r.at);
    Ok(out)
}

fn request(e: &Value, prefix: &str) -> Option<Request> {
    if e["stage"] != "ResponseComplete" {
        return None;
    }
    let agent = e["userAgent"].as_str()?;
    let identity = agent
        .strip_prefix("node-drain/")?
        .split_once(" (")?
        .1
        .strip_suffix(')')?;
    if !identity.starts_with(prefix) {
        return None;
    }
    let object = &e["objectRef"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Some(Request {
        at: e["requestReceivedTimestamp"].as_str()?.parse().ok()?,
        identity: identity.to_string(),
        verb: s(&e["verb"]),
        resource: s(&object["resource"]),
        subresource: s(&object["subresource"]),
        namespace: s(&object["namespace"]),
        name: s(&object["name"]),
        code: e["responseStatus"]["code"].as_u64().unwrap_or(0) as u16,
        uid: e
            .pointer("/requestObject/deleteOptions/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}
