//! NodeDrainActor: drains one node (SPEC §3), under an actix Supervisor.
//!
//! Phases: record intent on the Node → cordon → plan and remove the pods in
//! tiers (problem and finished pods first, then stateless, StatefulSet, critical;
//! each tier gone before the next) → wait until every planned UID is gone (one
//! watch of the node's pods) → retire → record the outcome.
//!
//! Progress lives outside the actor (the shared `Progress` map and the Node's
//! `node-drain.io/` annotations). A step that fails, or panics, stops the actor;
//! the Supervisor restarts it and `started()` resumes from the recorded phase:
//! the plan is never remade, and UIDs already removed or in flight are never
//! sent again.

mod actor;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::watcher;
use kube::Client;
use serde_json::json;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::actors::evictor::EvictorPool;
use crate::actors::planner::{node_pods, node_ready};
use crate::karpenter::NodeClaim;
use crate::messages::{NodeDrainFinished, PodRemoval, RemovePod};
use crate::node_state::{HEARTBEAT, RUN_ID, STATE, WAS_UNSCHEDULABLE};
use crate::pods::{classify, EvictionTier, PodAction};
use crate::progress::{DrainOutcome, NodeProgress, Phase, PlannedRemoval, Progress};

/// How many times a node's actor may be restarted before its drain is given up.
pub const MAX_RESTARTS: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnTimeout {
    /// Give up, uncordon (if node-drain cordoned it), report.
    Restore,
    /// Delete the remaining pods with their own grace period (PDBs bypassed).
    Force,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Retire {
    /// Delete the Karpenter NodeClaim: Karpenter terminates the instance and replaces capacity.
    Nodeclaim,
    /// Delete the Node object.
    Node,
    /// Leave the drained node cordoned.
    None,
}

/// A test-only fault: fail (or panic) once per node at the start of `phase`
/// (for `evict`: after the first removals were answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub phase: Phase,
    pub panic: bool,
}

impl Fault {
    /// `NODE_DRAIN_TEST_FAULT=<intent|cordon|evict|wait|retire>[:panic]`: for tests
    /// of supervision only.
    pub fn from_env() -> Option<Self> {
        let value = std::env::var("NODE_DRAIN_TEST_FAULT").ok()?;
        let (phase, panic) = match value.split_once(':') {
            Some((p, "panic")) => (p.to_string(), true),
            _ => (value.clone(), false),
        };
        let phase = match phase.as_str() {
            "intent" => Phase::Intent,
            "cordon" => Phase::Cordon,
            "evict" => Phase::Evict,
            "wait" => Phase::Wait,
            "retire" => Phase::Retire,
            _ => return None,
        };
        Some(Self { phase, panic })
    }
}

#[derive(Debug, Clone)]
pub struct DrainSettings {
    pub run_id: String,
    pub force: bool,
    pub on_timeout: OnTimeout,
    pub drain_timeout: Duration,
    pub retire: Retire,
    /// Evictions of one node in flight at once.
    pub node_in_flight: usize,
    pub fault: Option<Fault>,
}

/// Everything a NodeDrainActor needs; shared by all of them.
pub struct DrainContext {
    /// Set on SIGINT/SIGTERM: every node stops at its next step and is restored.
    pub interrupted: Arc<std::sync::atomic::AtomicBool>,
    pub client: Client,
    pub evictors: EvictorPool,
    pub settings: DrainSettings,
    pub progress: Progress,
    pub recorder: Recorder,
    pub finished: tokio::sync::mpsc::UnboundedSender<NodeDrainFinished>,
}

pub struct NodeDrainActor {
    node: String,
    cx: Arc<DrainContext>,
}

impl NodeDrainActor {
    pub fn new(node: String, cx: Arc<DrainContext>) -> Self {
        cx.progress
            .entry(node.clone())
            .or_insert_with(|| NodeProgress::new(Instant::now() + cx.settings.drain_timeout));
        Self { node, cx }
    }
}

/// A step that did not complete: the actor stops and is restarted.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(
        "Kubernetes API: could not {action}: {}",
        crate::error::describe_kube(source)
    )]
    Kube { action: String, source: kube::Error },
    #[error("test fault injected at phase {0}")]
    Fault(&'static str),
    #[error("{0}")]
    Other(String),
}

impl From<StepError> for crate::error::Error {
    fn from(e: StepError) -> Self {
        match e {
            StepError::Kube { action, source } => crate::error::Error::Kube { action, source },
            other => crate::error::Error::Internal(other.to_string()),
        }
    }
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> StepError {
    let action = action.into();
    move |source| StepError::Kube { action, source }
}

fn phase_of(cx: &DrainContext, node: &str) -> Phase {
    cx.progress
        .get(node)
        .map(|p| p.phase)
        .unwrap_or(Phase::Intent)
}

/// When this node's drain must be over (kept across restarts).
fn deadline_of(cx: &DrainContext, node: &str) -> Instant {
    cx.progress
        .get(node)
        .map(|p| p.deadline)
        .unwrap_or_else(Instant::now)
}

fn set_phase(cx: &DrainContext, node: &str, phase: Phase) {
    if let Some(mut p) = cx.progress.get_mut(node) {
        p.phase = phase;
    }
}

/// Fires the test fault once per node, at the start of its phase.
fn fault(cx: &DrainContext, node: &str, phase: Phase) -> Result<(), StepError> {
    let Some(f) = cx.settings.fault else {
        return Ok(());
    };
    if f.phase != phase {
        return Ok(());
    }
    let first = cx
        .progress
        .get_mut(node)
        .map(|mut p| p.faults_fired.insert(phase.name()))
        .unwrap_or(false);
    if !first {
        return Ok(());
    }
    warn!(
        node,
        phase = phase.name(),
        "test fault: failing the node's actor"
    );
    if f.panic {
        panic!("test fault: panic at phase {}", phase.name());
    }
    Err(StepError::Fault(phase.name()))
}

fn node_ref(node: &Node) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: node.metadata.name.clone(),
        uid: node.metadata.uid.clone(),
        ..Default::default()
    }
}

/// Publishes an Event on the Node; an Event that cannot be written is logged, never fatal.
pub async fn event(cx: &DrainContext, node: &Node, warning: bool, reason: &str, note: String) {
    publish_event(&cx.recorder, node, warning, reason, note).await
}

pub async fn publish_event(
    recorder: &Recorder,
    node: &Node,
    warning: bool,
    reason: &str,
    note: String,
) {
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Drain".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, &node_ref(node)).await {
        warn!(
            node = node.metadata.name.as_deref().unwrap_or(""),
            reason,
            error = e.to_string().as_str(),
            "could not record an Event"
        );
    }
}

async fn annotate(
    cx: &DrainContext,
    node: &str,
    values: serde_json::Value,
) -> Result<(), StepError> {
    annotate_node(&cx.client, node, values).await
}

async fn annotate_node(
    client: &Client,
    node: &str,
    values: serde_json::Value,
) -> Result<(), StepError> {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": values}})),
        )
        .await
        .map_err(kube_err(format!("annotate node {node}")))?;
    Ok(())
}

/// The whole drain of one node, resuming at the recorded phase.
pub async fn drain(cx: Arc<DrainContext>, node_name: String) -> Result<DrainOutcome, StepError> {
    let nodes: Api<Node> = Api::all(cx.client.clone());
    let node = nodes
        .get(&node_name)
        .await
        .map_err(kube_err(format!("get node {node_name}")))?;

    if phase_of(&cx, &node_name) <= Phase::Intent {
        fault(&cx, &node_name, Phase::Intent)?;
        // Intent first, before anything changes: a restart (or a person) sees that
        // node-drain owns this node and whether it was already cordoned.
        let annotations = node.metadata.annotations.clone().unwrap_or_default();
        let ours = annotations.get(RUN_ID) == Some(&cx.settings.run_id);
        let was_unschedulable = match (ours, annotations.get(WAS_UNSCHEDULABLE)) {
            (true, Some(v)) => v == "true",
            _ => node
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false),
        };
        annotate(
            &cx,
            &node_name,
            json!({
                STATE: "cordoning",
                RUN_ID: cx.settings.run_id,
                WAS_UNSCHEDULABLE: was_unschedulable.to_string(),
                HEARTBEAT: chrono::Utc::now().to_rfc3339(),
            }),
        )
        .await?;
        if let Some(mut p) = cx.progress.get_mut(&node_name) {
            p.cordoned_by_us = Some(!was_unschedulable);
        }
        set_phase(&cx, &node_name, Phase::Cordon);
    }

    if let Some(outcome) = stop_if_interrupted(&cx, &node).await? {
        return Ok(outcome);
    }
    if phase_of(&cx, &node_name) <= Phase::Cordon {
        fault(&cx, &node_name, Phase::Cordon)?;
        nodes
            .cordon(&node_name)
            .await
            .map_err(kube_err(format!("cordon node {node_name}")))?;
        annotate(&cx, &node_name, json!({STATE: "draining"})).await?;
        info!(nodeName = node_name.as_str(), "노드 Cordon 완료");
        event(
            &cx,
            &node,
            false,
            "DrainStarted",
            format!(
                "node-drain run {} cordoned the node and starts draining it",
                cx.settings.run_id
            ),
        )
        .await;
        set_phase(&cx, &node_name, Phase::Evict);
    }

    if let Some(outcome) = stop_if_interrupted(&cx, &node).await? {
        return Ok(outcome);
    }
    if phase_of(&cx, &node_name) <= Phase::Evict {
        info!(nodeName = node_name.as_str(), "노드에서 pod evict 시작");
        let planned = plan_once(&cx, &node).await?;
        let blockers: Vec<String> = planned
            .iter()
            .filter_map(|p| match &p.action {
                PodAction::Block(reason) => Some(format!("{}/{} ({reason})", p.namespace, p.name)),
                _ => None,
            })
            .collect();
        if !blockers.is_empty() && !cx.settings.force {
            event(
                &cx,
                &node,
                true,
                "DrainBlocked",
                format!(
                    "blocking pods (use --force to override): {}",
                    blockers.join(", ")
                ),
            )
            .await;
            return restore(
                &cx,
                &node,
                "blocked by pods that would not come back or ask not to be disrupted".into(),
                blockers,
            )
            .await;
        }
        if let Some(outcome) = remove_in_tiers(&cx, &node, &planned).await? {
            return Ok(outcome);
        }
        set_phase(&cx, &node_name, Phase::Wait);
    }

    if phase_of(&cx, &node_name) <= Phase::Wait {
        fault(&cx, &node_name, Phase::Wait)?;
        let planned = cx
            .progress
            .get(&node_name)
            .and_then(|p| p.planned.clone())
            .unwrap_or_default();
        let uids: BTreeSet<String> = planned.iter().map(|p| p.uid.clone()).collect();
        if let Some(outcome) = wait_or_time_out(&cx, &node, &uids).await? {
            return Ok(outcome);
        }
        info!(
            nodeName = node_name.as_str(),
            "노드에서 데몬셋을 제외한 모든 Pod가 종료됨"
        );
        set_phase(&cx, &node_name, Phase::Retire);
    }

    if let Some(outcome) = stop_if_interrupted(&cx, &node).await? {
        return Ok(outcome);
    }
    if phase_of(&cx, &node_name) <= Phase::Retire {
        fault(&cx, &node_name, Phase::Retire)?;
        annotate(&cx, &node_name, json!({STATE: "drained"})).await?;
        event(
            &cx,
            &node,
            false,
            "DrainSucceeded",
            "every planned pod is gone".into(),
        )
        .await;
        let retired = retire(&cx, &node).await?;
        set_phase(&cx, &node_name, Phase::Done);
        return Ok(DrainOutcome::Drained { retired });
    }
    // Already done in an earlier incarnation.
    Ok(cx
        .progress
        .get(&node_name)
        .and_then(|p| p.outcome.clone())
        .unwrap_or(DrainOutcome::Drained {
            retired: "earlier".into(),
        }))
}

/// Lists and classifies the node's pods once; later incarnations reuse the plan.
async fn plan_once(cx: &DrainContext, node: &Node) -> Result<Vec<PlannedRemoval>, StepError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    if let Some(planned) = cx.progress.get(&name).and_then(|p| p.planned.clone()) {
        return Ok(planned);
    }
    let listed = node_pods(&cx.client, &name)
        .await
        .map_err(kube_err(format!("list pods of node {name}")))?;
    let ready = node_ready(node);
    let now = chrono::Utc::now();
    let planned: Vec<PlannedRemoval> = listed
        .iter()
        .map(|pod| PlannedRemoval {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            action: classify(pod, ready, now),
        })
        .filter(|p| !matches!(p.action, PodAction::Skip(_)))
        .collect();
    if let Some(mut p) = cx.progress.get_mut(&name) {
        p.planned = Some(planned.clone());
    }
    Ok(planned)
}

/// Which removal step a planned pod belongs to: 0 = problem and finished pods,
/// then one step per eviction tier. None: only waited for.
fn step_of(action: &PodAction, force: bool) -> Option<u8> {
    match action {
        PodAction::ForceDelete(_) | PodAction::DeleteFinished => Some(0),
        PodAction::Evict(EvictionTier::Stateless) => Some(1),
        PodAction::Block(_) if force => Some(1),
        PodAction::Evict(EvictionTier::StatefulSet) => Some(2),
        PodAction::Evict(EvictionTier::Critical) => Some(3),
        _ => None,
    }
}

/// Sends each step's removals (bounded per node) and waits for that step's pods
/// to be gone before the next. Some(outcome) when the drain ended here.
async fn remove_in_tiers(
    cx: &DrainContext,
    node: &Node,
    planned: &[PlannedRemoval],
) -> Result<Option<DrainOutcome>, StepError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let deadline = deadline_of(cx, &name);
    let mut steps: BTreeMap<u8, Vec<PlannedRemoval>> = BTreeMap::new();
    for pod in planned {
        if let Some(step) = step_of(&pod.action, cx.settings.force) {
            steps.entry(step).or_default().push(pod.clone());
        }
    }
    for (_, pods) in steps {
        if let Some(outcome) = stop_if_interrupted(cx, node).await? {
            return Ok(Some(outcome));
        }
        // Nothing twice: skip what an earlier incarnation removed or has in flight.
        let (removed, in_flight) = cx
            .progress
            .get(&name)
            .map(|p| (p.removed.clone(), p.in_flight.clone()))
            .unwrap_or_default();
        let to_send: Vec<PlannedRemoval> = pods
            .iter()
            .filter(|p| !removed.contains(&p.uid) && !in_flight.contains(&p.uid))
            .cloned()
            .collect();
        let results: Vec<(PlannedRemoval, PodRemoval)> = futures::stream::iter(to_send)
            .map(|pod| {
                let msg = RemovePod {
                    node: name.clone(),
                    pod: pod.clone(),
                    deadline,
                };
                async move { (pod, cx.evictors.remove(msg).await) }
            })
            .buffer_unordered(cx.settings.node_in_flight.max(1))
            .collect()
            .await;
        let mut blocked = Vec::new();
        let mut timed_out = Vec::new();
        for (pod, result) in results {
            let pod_name = format!("{}/{}", pod.namespace, pod.name);
            match result {
                PodRemoval::Removed => {}
                PodRemoval::Blocked { reason } => blocked.push(format!("{pod_name} ({reason})")),
                PodRemoval::TimedOut { pdb } => timed_out.push(format!(
                    "{pod_name}{}",
                    pdb.map(|p| format!(" (PodDisruptionBudget {p})"))
                        .unwrap_or_default()
                )),
                PodRemoval::Failed { reason } => {
                    return Err(StepError::Other(format!("removing {pod_name}: {reason}")))
                }
            }
        }
        // The test fault for this phase fires mid-eviction: after the first
        // removals are answered, so the restarted actor must skip them.
        fault(cx, &name, Phase::Evict)?;
        if !blocked.is_empty() {
            event(
                cx,
                node,
                true,
                "DrainBlocked",
                format!("evictions blocked: {}", blocked.join(", ")),
            )
            .await;
            return restore(cx, node, "evictions blocked".into(), blocked)
                .await
                .map(Some);
        }
        if !timed_out.is_empty() {
            if let Some(outcome) = on_timeout(cx, node, timed_out).await? {
                return Ok(Some(outcome));
            }
        }
        let uids: BTreeSet<String> = pods.iter().map(|p| p.uid.clone()).collect();
        if let Some(outcome) = wait_or_time_out(cx, node, &uids).await? {
            return Ok(Some(outcome));
        }
    }
    Ok(None)
}

/// Waits until `uids` are gone from the node; on the deadline applies `--on-timeout`.
async fn wait_or_time_out(
    cx: &DrainContext,
    node: &Node,
    uids: &BTreeSet<String>,
) -> Result<Option<DrainOutcome>, StepError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let deadline = deadline_of(cx, &name);
    match wait_gone(&cx.client, &name, uids, deadline, Some(&cx.interrupted)).await? {
        None => Ok(None),
        Some(_) if cx.interrupted.load(std::sync::atomic::Ordering::SeqCst) => {
            stop_if_interrupted(cx, node).await
        }
        Some(remaining) => {
            let pdbs: Vec<String> = cx
                .progress
                .get(&name)
                .map(|p| p.pdb_refusals.keys().cloned().collect())
                .unwrap_or_default();
            let mut blockers = remaining;
            blockers.extend(pdbs.into_iter().map(|p| format!("PodDisruptionBudget {p}")));
            on_timeout(cx, node, blockers).await
        }
    }
}

/// `--on-timeout restore` gives the node back; `force` deletes what remains with
/// its own grace period and waits for it once more.
async fn on_timeout(
    cx: &DrainContext,
    node: &Node,
    blockers: Vec<String>,
) -> Result<Option<DrainOutcome>, StepError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let timeout = cx.settings.drain_timeout;
    if cx.settings.on_timeout == OnTimeout::Restore {
        event(
            cx,
            node,
            true,
            "DrainBlocked",
            format!("not drained within {timeout:?}: {}", blockers.join(", ")),
        )
        .await;
        return restore(cx, node, format!("drain timeout ({timeout:?})"), blockers)
            .await
            .map(Some);
    }
    warn!(
        node = name.as_str(),
        "drain timeout: --on-timeout force deletes the remaining pods"
    );
    let planned = cx
        .progress
        .get(&name)
        .and_then(|p| p.planned.clone())
        .unwrap_or_default();
    let present: BTreeSet<String> = node_pods(&cx.client, &name)
        .await
        .map_err(kube_err(format!("list pods of node {name}")))?
        .into_iter()
        .filter_map(|p| p.metadata.uid)
        .collect();
    let mut longest_grace = 30;
    for pod in planned.iter().filter(|p| present.contains(&p.uid)) {
        let api: Api<Pod> = Api::namespaced(cx.client.clone(), &pod.namespace);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(pod.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&pod.name, &params).await {
            Ok(either) => {
                if let Some(grace) = either
                    .left()
                    .and_then(|p| p.spec)
                    .and_then(|s| s.termination_grace_period_seconds)
                {
                    longest_grace = longest_grace.max(grace);
                }
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => {
                return Err(kube_err(format!(
                    "delete pod {}/{}",
                    pod.namespace, pod.name
                ))(e))
            }
        }
    }
    let uids: BTreeSet<String> = planned.iter().map(|p| p.uid.clone()).collect();
    let until = Instant::now() + Duration::from_secs(longest_grace as u64 + 30);
    match wait_gone(&cx.client, &name, &uids, until, None).await? {
        None => Ok(None),
        Some(remaining) => restore(
            cx,
            node,
            "pods remained after forced deletion".into(),
            remaining,
        )
        .await
        .map(Some),
    }
}

/// Watches the node's pods (one watch, no per-pod polling) until none of `uids`
/// is present. None when they are gone; Some(remaining pods) at the deadline.
pub async fn wait_gone(
    client: &Client,
    node: &str,
    uids: &BTreeSet<String>,
    deadline: Instant,
    interrupted: Option<&std::sync::atomic::AtomicBool>,
) -> Result<Option<Vec<String>>, StepError> {
    if uids.is_empty() {
        return Ok(None);
    }
    let pods: Api<Pod> = Api::all(client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = watcher(pods, config).boxed();
    // UID → namespace/name of the planned pods still present.
    let mut present: BTreeMap<String, String> = BTreeMap::new();
    let mut init: BTreeMap<String, String> = BTreeMap::new();
    let mut synced = false;
    let name_of = |p: &Pod| {
        format!(
            "{}/{}",
            p.metadata.namespace.as_deref().unwrap_or(""),
            p.metadata.name.as_deref().unwrap_or("")
        )
    };
    loop {
        if synced && present.is_empty() {
            return Ok(None);
        }
        if interrupted.is_some_and(|i| i.load(std::sync::atomic::Ordering::SeqCst)) {
            return Ok(Some(present.into_values().collect()));
        }
        // Wake at least every second to notice an interruption.
        let wake = deadline.min(Instant::now() + Duration::from_secs(1));
        let next = match tokio::time::timeout_at(wake, stream.try_next()).await {
            Err(_) if Instant::now() >= deadline => {
                return Ok(Some(present.into_values().collect()))
            }
            Err(_) => continue,
            Ok(Err(e)) => {
                // The watcher re-lists by itself after an error; keep waiting.
                warn!(
                    node,
                    error = e.to_string().as_str(),
                    "pod watch error; resuming"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Ok(Ok(None)) => {
                return Err(StepError::Other(format!(
                    "the pod watch of node {node} ended"
                )))
            }
            Ok(Ok(Some(ev))) => ev,
        };
        match next {
            watcher::Event::Init => init.clear(),
            watcher::Event::InitApply(p) => {
                if let Some(uid) = p.metadata.uid.clone().filter(|u| uids.contains(u)) {
                    init.insert(uid, name_of(&p));
                }
            }
            watcher::Event::InitDone => {
                present = std::mem::take(&mut init);
                synced = true;
            }
            watcher::Event::Apply(p) => {
                if let Some(uid) = p.metadata.uid.clone().filter(|u| uids.contains(u)) {
                    present.insert(uid, name_of(&p));
                }
            }
            watcher::Event::Delete(p) => {
                if let Some(uid) = p.metadata.uid.as_ref() {
                    present.remove(uid);
                }
            }
        }
    }
}

/// Gives the node back: uncordon only if node-drain cordoned it; records the failure.
pub async fn restore(
    cx: &DrainContext,
    node: &Node,
    reason: String,
    blockers: Vec<String>,
) -> Result<DrainOutcome, StepError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let cordoned_by_us = cx
        .progress
        .get(&name)
        .and_then(|p| p.cordoned_by_us)
        .unwrap_or_else(|| cordoned_by_node_drain(node));
    restore_node(
        &cx.client,
        &cx.recorder,
        node,
        cordoned_by_us,
        &reason,
        &blockers,
    )
    .await?;
    set_phase(cx, &name, Phase::Done);
    Ok(DrainOutcome::Failed { reason, blockers })
}

/// What the Node's own record says: node-drain cordoned it (it was schedulable before).
fn cordoned_by_node_drain(node: &Node) -> bool {
    let annotations = node.metadata.annotations.clone().unwrap_or_default();
    annotations
        .get(WAS_UNSCHEDULABLE)
        .map(|v| v == "false")
        .unwrap_or(false)
}

/// Uncordons (if `cordoned_by_us`), records `restored`, logs and leaves an Event.
pub async fn restore_node(
    client: &Client,
    recorder: &Recorder,
    node: &Node,
    cordoned_by_us: bool,
    reason: &str,
    blockers: &[String],
) -> Result<(), StepError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let nodes: Api<Node> = Api::all(client.clone());
    if cordoned_by_us {
        nodes
            .uncordon(&name)
            .await
            .map_err(kube_err(format!("uncordon node {name}")))?;
    }
    annotate_node(client, &name, json!({STATE: "restored"})).await?;
    warn!(
        node = name.as_str(),
        reason,
        blockers = blockers.join(", ").as_str(),
        uncordoned = cordoned_by_us,
        "drain failed; node restored"
    );
    let note = format!(
        "{reason}; restored{}: {}",
        if cordoned_by_us {
            " and uncordoned"
        } else {
            ""
        },
        blockers.join(", ")
    );
    publish_event(recorder, node, true, "DrainFailed", note).await;
    Ok(())
}

/// On SIGINT/SIGTERM: restore the node now and end its drain.
async fn stop_if_interrupted(
    cx: &DrainContext,
    node: &Node,
) -> Result<Option<DrainOutcome>, StepError> {
    if !cx.interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(None);
    }
    restore(cx, node, "interrupted (SIGINT/SIGTERM)".into(), vec![])
        .await
        .map(Some)
}

/// Refreshes the heartbeat of every node this run is still draining.
pub async fn heartbeat(cx: &DrainContext) {
    let nodes: Vec<String> = cx
        .progress
        .iter()
        .filter(|p| p.outcome.is_none() && p.phase > Phase::Intent)
        .map(|p| p.key().clone())
        .collect();
    for node in nodes {
        if let Err(e) = annotate(
            cx,
            &node,
            json!({HEARTBEAT: chrono::Utc::now().to_rfc3339()}),
        )
        .await
        {
            warn!(
                node = node.as_str(),
                error = e.to_string().as_str(),
                "could not refresh the drain heartbeat"
            );
        }
    }
}

/// Restores the NodePool's nodes whose drain lost its run (a node-drain killed
/// mid-drain: state in progress, heartbeat older than `orphan_after`).
pub async fn recover_orphans(
    client: &Client,
    recorder: &Recorder,
    nodepool: &str,
    orphan_after: Duration,
) -> Result<Vec<String>, StepError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let listed = nodes
        .list(
            &ListParams::default()
                .labels(&format!("{}={nodepool}", crate::karpenter::NODEPOOL_LABEL)),
        )
        .await
        .map_err(kube_err(format!("list nodes of NodePool {nodepool}")))?;
    let now = chrono::Utc::now();
    let after = chrono::Duration::from_std(orphan_after).unwrap_or(chrono::Duration::seconds(60));
    let mut recovered = Vec::new();
    for node in listed.items {
        let annotations = node.metadata.annotations.clone();
        if !crate::node_state::orphaned(annotations.as_ref(), now, after) {
            continue;
        }
        let annotations = annotations.unwrap_or_default();
        let run = annotations.get(RUN_ID).cloned().unwrap_or_default();
        let beat = annotations
            .get(HEARTBEAT)
            .cloned()
            .unwrap_or_else(|| "never".into());
        let reason = format!("run {run} stopped mid-drain (last heartbeat {beat})");
        restore_node(
            client,
            recorder,
            &node,
            cordoned_by_node_drain(&node),
            &reason,
            &[],
        )
        .await?;
        recovered.push(node.metadata.name.clone().unwrap_or_default());
    }
    Ok(recovered)
}

/// Retires a drained node as `--retire` says.
async fn retire(cx: &DrainContext, node: &Node) -> Result<String, StepError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    match cx.settings.retire {
        Retire::None => Ok("none (left cordoned)".into()),
        Retire::Node => {
            let nodes: Api<Node> = Api::all(cx.client.clone());
            match nodes.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(kube_err(format!("delete node {name}"))(e)),
            }
            event(
                cx,
                node,
                false,
                "NodeRetired",
                "the Node object was deleted".into(),
            )
            .await;
            Ok(format!("node {name} deleted"))
        }
        Retire::Nodeclaim => {
            let claims: Api<NodeClaim> = Api::all(cx.client.clone());
            let listed = claims
                .list(&ListParams::default())
                .await
                .map_err(kube_err("list NodeClaims"))?;
            let provider_id = node.spec.as_ref().and_then(|s| s.provider_id.clone());
            let claim = listed.items.into_iter().find(|c| {
                let status = c.status.as_ref();
                status.and_then(|s| s.node_name.as_ref()) == Some(&name)
                    || (provider_id.is_some()
                        && status.and_then(|s| s.provider_id.as_ref()) == provider_id.as_ref())
            });
            let Some(claim) = claim else {
                warn!(
                    node = name.as_str(),
                    "no NodeClaim owns this node; left cordoned"
                );
                return Ok("no NodeClaim found (left cordoned)".into());
            };
            let claim_name = claim.metadata.name.clone().unwrap_or_default();
            match claims.delete(&claim_name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(kube_err(format!("delete NodeClaim {claim_name}"))(e)),
            }
            info!(
                node = name.as_str(),
                nodeclaim = claim_name.as_str(),
                "NodeClaim deleted: Karpenter terminates the instance"
            );
            event(
                cx,
                node,
                false,
                "NodeRetired",
                format!("NodeClaim {claim_name} deleted; Karpenter replaces the capacity"),
            )
            .await;
            Ok(format!("NodeClaim {claim_name} deleted"))
        }
    }
}

/// Counts for the summary, from the recorded plan and removals.
pub fn removal_counts(progress: &NodeProgress) -> (usize, usize) {
    let planned = progress.planned.clone().unwrap_or_default();
    let removed = |p: &&PlannedRemoval| progress.removed.contains(&p.uid);
    let evicted = planned
        .iter()
        .filter(removed)
        .filter(|p| matches!(p.action, PodAction::Evict(_) | PodAction::Block(_)))
        .count();
    let forced = planned
        .iter()
        .filter(removed)
        .filter(|p| matches!(p.action, PodAction::ForceDelete(_)))
        .count();
    (evicted, forced)
}
