//! Which planned pods of a node are still there, as the watch of the node's
//! pods tells it. Every change is applied to every planned pod, whichever tier
//! is being waited for: a later tier's pod deleted by someone else while an
//! earlier tier waits is known gone when its own tier comes, even though the
//! watch that saw it is long over. Pure: watch changes in, presence out; the
//! wait step (`actors::node_drain::wait`) is the IO around it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;

/// What a watch of a node's pods reports, whichever way it was started.
#[derive(Debug)]
pub enum PodChange {
    /// The full set of pods on the node (after a LIST).
    Listed(Vec<Pod>),
    Applied(Pod),
    Deleted(Pod),
    /// The stream has seen everything up to this resourceVersion.
    Version(String),
    /// A transient error; the watch goes on (or the stream ends).
    Error(String),
    /// The resourceVersion to resume from is too old (410): LIST again.
    Expired,
}

/// What applying a change asks of the wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Recorded; carry on.
    Recorded,
    /// The watch cannot resume from its version: list again.
    Expired,
    /// The watch reported an error.
    Error(String),
}

/// The planned pods of one node as last seen.
#[derive(Debug, Clone)]
pub struct Presence {
    /// Every planned UID not known gone when this began.
    planned: BTreeSet<String>,
    /// The planned pods present, as last seen, by UID.
    present: BTreeMap<String, Pod>,
    /// `present` is complete: resumed from a snapshot, or a LIST was seen.
    synced: bool,
    /// The resourceVersion of the last change seen (where a watch resumes).
    version: Option<String>,
}

impl Presence {
    /// Resumed from `snapshot`, the planned pods as seen at `version`: a watch
    /// from there reports every change since.
    pub fn resumed(
        planned: impl IntoIterator<Item = String>,
        snapshot: &BTreeMap<String, Pod>,
        version: String,
    ) -> Self {
        let planned: BTreeSet<String> = planned.into_iter().collect();
        let present = snapshot
            .iter()
            .filter(|(uid, _)| planned.contains(*uid))
            .map(|(uid, pod)| (uid.clone(), pod.clone()))
            .collect();
        Self {
            planned,
            present,
            synced: true,
            version: Some(version),
        }
    }

    /// Knows nothing until the watch's LIST arrives.
    pub fn unlisted(planned: impl IntoIterator<Item = String>) -> Self {
        Self {
            planned: planned.into_iter().collect(),
            present: BTreeMap::new(),
            synced: false,
            version: None,
        }
    }

    pub fn apply(&mut self, change: PodChange) -> Applied {
        match change {
            PodChange::Listed(pods) => {
                self.present = pods
                    .into_iter()
                    .filter_map(|pod| Some((self.planned_uid(&pod)?, pod)))
                    .collect();
                self.synced = true;
            }
            PodChange::Applied(pod) => {
                self.seen_at(&pod);
                if let Some(uid) = self.planned_uid(&pod) {
                    self.present.insert(uid, pod);
                }
            }
            PodChange::Deleted(pod) => {
                self.seen_at(&pod);
                if let Some(uid) = pod.metadata.uid.as_ref() {
                    self.present.remove(uid);
                }
            }
            PodChange::Version(version) => self.version = Some(version),
            PodChange::Error(e) => return Applied::Error(e),
            PodChange::Expired => {
                self.version = None;
                return Applied::Expired;
            }
        }
        Applied::Recorded
    }

    /// `present` is complete, so what is not in it is gone.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Planned pods known gone (none before the first LIST).
    pub fn gone(&self) -> BTreeSet<String> {
        if !self.synced {
            return BTreeSet::new();
        }
        self.planned
            .iter()
            .filter(|uid| !self.present.contains_key(*uid))
            .cloned()
            .collect()
    }

    /// The pods among `uids` still present (nothing is known before the LIST:
    /// all of them then).
    pub fn present_among<'a>(&'a self, uids: &BTreeSet<String>) -> BTreeMap<&'a str, &'a Pod> {
        self.present
            .iter()
            .filter(|(uid, _)| uids.contains(*uid))
            .map(|(uid, pod)| (uid.as_str(), pod))
            .collect()
    }

    /// Whether every one of `uids` is known gone.
    pub fn all_gone(&self, uids: &BTreeSet<String>) -> bool {
        self.synced && self.present_among(uids).is_empty()
    }

    /// The resourceVersion a later watch resumes from.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The planned pods present (what a resumed watch starts from).
    pub fn snapshot(&self) -> &BTreeMap<String, Pod> {
        &self.present
    }

    fn planned_uid(&self, pod: &Pod) -> Option<String> {
        pod.metadata
            .uid
            .clone()
            .filter(|uid| self.planned.contains(uid))
    }

    fn seen_at(&mut self, pod: &Pod) {
        if let Some(version) = &pod.metadata.resource_version {
            self.version = Some(version.clone());
        }
    }
}

#[cfg(test)]
#[path = "presence_tests.rs"]
mod tests;
