//! A request the daemon's leader queued (its NodePool had no room), recorded on
//! its Node (`node-drain.io/queued`) so that it outlives the leader: the next
//! leader reads the records at reconcile and admits them again, oldest first.
//! The record never cordons nor claims the node; the claim removes it.
//! Decided here without IO: the record's form, the order, and what a new
//! leader does with each record it finds.

use chrono::{DateTime, SecondsFormat, Utc};

use super::annotations::RecordedSettings;
use crate::alerts::rules::Action;

/// What a queued request records on its Node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedRecord {
    pub action: Action,
    /// What asked (the alert and its labels), for Slack, Events and status.
    pub trigger: String,
    /// When the first leader queued it (RFC 3339, nanoseconds): the order.
    pub queued_at: String,
    /// The process (pod or host name) whose leadership queued it.
    pub holder: String,
    /// The daemon's Lease (`namespace/name`): only its leaders admit it.
    pub lease: String,
    pub settings: RecordedSettings,
}

impl QueuedRecord {
    pub fn new(
        action: Action,
        trigger: &str,
        now: DateTime<Utc>,
        holder: &str,
        lease: &str,
        settings: RecordedSettings,
    ) -> Self {
        Self {
            action,
            trigger: trigger.chars().take(500).collect(),
            queued_at: now.to_rfc3339_opts(SecondsFormat::Nanos, true),
            holder: holder.into(),
            lease: lease.into(),
            settings,
        }
    }

    /// The annotation's value.
    pub fn to_value(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn parse(value: &str) -> Option<Self> {
        serde_json::from_str(value).ok()
    }

    fn queued_at(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.queued_at)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// A record found on a node, with the raw value its removal tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub node: String,
    pub raw: String,
    pub record: QueuedRecord,
}

/// What a new leader does with a node's queued record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Admit the request again (in `order`).
    Readmit(QueuedRecord),
    /// Obsolete: remove the record, saying why.
    Remove { why: String },
    /// Another daemon's (another Lease): not ours to touch.
    Leave,
}

/// The node's state that decides a record's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeState {
    pub deleting: bool,
    /// Its NodePool is managed by this daemon now.
    pub managed: bool,
}

/// `raw`: the node's `node-drain.io/queued` value; `lease`: this leader's.
pub fn fate(raw: &str, lease: &str, node: NodeState) -> Fate {
    let Some(record) = QueuedRecord::parse(raw) else {
        return Fate::Remove {
            why: "the queued record is unreadable".into(),
        };
    };
    if record.lease != lease {
        return Fate::Leave;
    }
    if node.deleting {
        return Fate::Remove {
            why: "the node is being deleted".into(),
        };
    }
    if !node.managed {
        return Fate::Remove {
            why: "its NodePool is no longer managed".into(),
        };
    }
    Fate::Readmit(record)
}

/// Oldest first (an unreadable time last), then by node name: the order the
/// requests were first queued in.
pub fn order(found: &mut [Found]) {
    found.sort_by(|a, b| {
        let key = |f: &Found| (f.record.queued_at().is_none(), f.record.queued_at());
        key(a).cmp(&key(b)).then_with(|| a.node.cmp(&b.node))
    });
}

#[cfg(test)]
#[path = "queued_tests.rs"]
mod tests;
