//! Drain runs owned by the PlannerActor: admission (a node is in at most one
//! run of this process), one supervised NodeDrainActor per node, the run's
//! heartbeat, Slack notices, cancellation per run and per node, and the report
//! for whoever awaits the run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Addr, AsyncContext, Context, SpawnHandle, Supervisor, WrapFuture};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::notices::{log_outcome, node_notice, run_finished_notice};
use super::PlannerActor;
use crate::actors::node_drain::{NodeDrainActor, RunContext};
use crate::drain::StopReason;
use crate::error::{Error, Result};
use crate::messages::{
    NodeDrainFinished, NodeStatus, Notify, RunId, RunReport, RunStatus, StartRun, StatusSnapshot,
};
use crate::slack::Notice;

/// Finished runs kept for late `AwaitRun`s and status.
const KEEP_FINISHED: usize = 20;

pub struct Run {
    pub nodepool: String,
    pub trigger: String,
    pub nodes: Vec<String>,
    pub cx: Arc<RunContext>,
    /// Cancelled to stop every node of the run; each node's token is a child.
    pub token: CancellationToken,
    pub node_tokens: HashMap<String, CancellationToken>,
    /// Keeps each supervised actor alive until its node is done.
    pub actors: Vec<Addr<NodeDrainActor>>,
    pub results: Vec<NodeDrainFinished>,
    pub waiters: Vec<oneshot::Sender<RunReport>>,
    pub started: Instant,
    pub report: Option<RunReport>,
    /// The run's heartbeat timer, cancelled when the run ends.
    pub heartbeat: Option<SpawnHandle>,
    /// The node node-drain runs on, started once every other node finished.
    pub deferred: Option<String>,
}

impl PlannerActor {
    pub(super) fn start_run(&mut self, msg: StartRun, ctx: &mut Context<Self>) -> Result<RunId> {
        if msg.nodes.is_empty() {
            return Err(Error::Usage("a run needs at least one node".into()));
        }
        for node in &msg.nodes {
            if let Some((id, _)) = self
                .runs
                .iter()
                .find(|(_, r)| r.report.is_none() && r.nodes.contains(node))
            {
                return Err(Error::NodeInRun {
                    node: node.clone(),
                    run: id.to_string(),
                });
            }
        }
        let run_id = super::run_id::new_run_id(&msg.nodepool, chrono::Utc::now());
        // A node finished in an earlier run of this process starts afresh.
        for node in &msg.nodes {
            self.deps.progress.remove(node);
        }
        let deadline = tokio::time::Instant::now() + msg.settings.drain_timeout;
        for node in &msg.nodes {
            crate::telemetry::metrics::get().drain_deadline(node, msg.settings.drain_timeout);
            let mut progress = crate::drain::progress::NodeProgress::new(run_id.clone(), deadline);
            progress.seen = msg
                .plan
                .as_ref()
                .and_then(|p| p.seen.get(node).cloned())
                .map(Box::new);
            self.deps.progress.insert(node.clone(), progress);
        }
        let cx = Arc::new(RunContext {
            run_id: run_id.clone(),
            holder: self.deps.identity.holder.clone(),
            client: self.client.clone(),
            evictors: self.deps.evictors.clone(),
            settings: msg.settings.clone(),
            progress: self.deps.progress.clone(),
            recorder: self.deps.recorder.clone(),
            finished: ctx.address().recipient(),
            own_pod: self.deps.identity.own_pod.clone(),
            fault: self.deps.fault,
            lease: self.deps.lease.clone(),
            take_over: msg.take_over.clone(),
        });
        let token = CancellationToken::new();
        let node_tokens: HashMap<String, CancellationToken> = msg
            .nodes
            .iter()
            .map(|node| (node.clone(), token.child_token()))
            .collect();
        let (now, deferred) =
            super::own_node::start_order(&msg.nodes, self.deps.identity.own_node.as_deref());
        let actors = now
            .iter()
            .map(|node| start_node(node, &cx, &node_tokens))
            .collect();
        info!(
            run = run_id.as_str(),
            trigger = msg.trigger.as_str(),
            nodes = msg.nodes.join(",").as_str(),
            "draining the wave"
        );
        self.notify_start(&run_id, &msg);
        // The heartbeat: often enough that the node ownership (confirmed for half of
        // --orphan-after) never lapses while the API server answers.
        let period = (msg.settings.orphan_after / 4)
            .clamp(Duration::from_millis(200), Duration::from_secs(10));
        let beat_id = run_id.clone();
        let heartbeat = ctx.run_interval(period, move |act, ctx| act.beat(&beat_id, ctx));
        self.runs.insert(
            run_id.clone(),
            Run {
                nodepool: msg.nodepool,
                trigger: msg.trigger,
                nodes: msg.nodes,
                cx,
                token,
                node_tokens,
                actors,
                results: vec![],
                waiters: vec![],
                started: Instant::now(),
                report: None,
                heartbeat: Some(heartbeat),
                deferred,
            },
        );
        Ok(run_id)
    }

    fn beat(&mut self, run_id: &str, ctx: &mut Context<Self>) {
        let Some(run) = self.runs.get(run_id).filter(|r| r.report.is_none()) else {
            return;
        };
        let cx = run.cx.clone();
        let tokens = run.node_tokens.clone();
        ctx.spawn(
            async move {
                super::reconcile::heartbeat(&cx, |node| {
                    if let Some(t) = tokens.get(node) {
                        t.cancel();
                    }
                })
                .await
            }
            .into_actor(self),
        );
    }

    fn notify_start(&self, run_id: &str, msg: &StartRun) {
        let notifier = &self.deps.notifier;
        let cluster = self.deps.cluster.clone();
        notifier.do_send(Notify(Notice::RunStarted {
            cluster: cluster.clone(),
            nodepool: msg.nodepool.clone(),
            nodes: msg.nodes.clone(),
            run_id: run_id.to_string(),
            trigger: msg.trigger.clone(),
        }));
        if let Some(plan) = &msg.plan {
            if let Some(rates) = &plan.rates {
                notifier.do_send(Notify(Notice::AllocateRates {
                    cluster,
                    nodepool: msg.nodepool.clone(),
                    memory_percent: rates.memory.allocate_rate_percent,
                    cpu_percent: rates.cpu.allocate_rate_percent,
                    max_percent: rates.max_allocate_rate(),
                    len_nodes: plan.wave.len_nodes,
                    drain_rate: plan.wave.drain_rate,
                    wave_size: plan.wave.wave_size,
                    limited_by: plan.wave.limited_by.iter().map(|c| c.to_string()).collect(),
                }));
            }
        }
    }

    pub(super) fn node_finished(&mut self, done: NodeDrainFinished, ctx: &mut Context<Self>) {
        log_outcome(&done);
        let metrics = crate::telemetry::metrics::get();
        metrics.drain_over(&done.node);
        if let Some(run) = self.runs.get(&done.run_id) {
            // From the node's own start (a deferred node starts late): its
            // deadline less its timeout.
            let timeout = run.cx.settings.drain_timeout;
            let seconds = self
                .deps
                .progress
                .get(&done.node)
                .and_then(|p| p.deadline.checked_sub(timeout))
                .map(|started| started.elapsed())
                .unwrap_or_else(|| run.started.elapsed());
            metrics.drain_finished(done.outcome.metric_label(), seconds.as_secs_f64());
        }
        if !self.pending.is_empty() {
            self.retry_pending(ctx);
        }
        self.deps
            .notifier
            .do_send(Notify(node_notice(&self.deps.cluster, &done)));
        let Some(run) = self.runs.get_mut(&done.run_id) else {
            return;
        };
        if run.results.iter().any(|r| r.node == done.node) {
            return;
        }
        run.results.push(done);
        if run.results.len() + 1 == run.nodes.len() {
            if let Some(node) = run.deferred.take() {
                // Every other node is done: the node node-drain runs on starts
                // now, with its whole --drain-timeout from now.
                info!(
                    run = run.cx.run_id.as_str(),
                    node = node.as_str(),
                    "the other nodes are done: draining the node node-drain runs on"
                );
                let deadline = tokio::time::Instant::now() + run.cx.settings.drain_timeout;
                crate::telemetry::metrics::get()
                    .drain_deadline(&node, run.cx.settings.drain_timeout);
                if let Some(mut p) = self.deps.progress.get_mut(&node) {
                    p.deadline = deadline;
                }
                run.actors
                    .push(start_node(&node, &run.cx, &run.node_tokens));
            }
        }
        if run.results.len() < run.nodes.len() {
            return;
        }
        let report = RunReport {
            run_id: run.cx.run_id.clone(),
            nodepool: run.nodepool.clone(),
            nodes: run.results.clone(),
            unfinished: vec![],
            elapsed: run.started.elapsed(),
        };
        self.deps
            .notifier
            .do_send(Notify(run_finished_notice(&self.deps.cluster, &report)));
        for waiter in run.waiters.drain(..) {
            let _ = waiter.send(report.clone());
        }
        run.actors.clear();
        if let Some(heartbeat) = run.heartbeat.take() {
            ctx.cancel_future(heartbeat);
        }
        run.report = Some(report);
        self.forget_old_runs();
    }

    fn forget_old_runs(&mut self) {
        let mut finished: Vec<(Instant, RunId)> = self
            .runs
            .iter()
            .filter(|(_, r)| r.report.is_some())
            .map(|(id, r)| (r.started, id.clone()))
            .collect();
        if finished.len() <= KEEP_FINISHED {
            return;
        }
        finished.sort();
        for (_, id) in finished.iter().take(finished.len() - KEEP_FINISHED) {
            if let Some(run) = self.runs.remove(id) {
                // Its nodes' progress goes with it, unless a later run holds them.
                for node in &run.nodes {
                    self.deps.progress.remove_if(node, |_, p| p.run_id == *id);
                }
            }
        }
    }

    /// Stops every node of the run (or every run); answers how many were told.
    pub(super) fn cancel_run(&mut self, run_id: Option<&str>, reason: &StopReason) -> usize {
        let mut told = 0;
        for (id, run) in self.runs.iter().filter(|(_, r)| r.report.is_none()) {
            if run_id.is_some_and(|wanted| wanted != id) {
                continue;
            }
            for node in &run.nodes {
                if self.stop_node(node, reason) {
                    told += 1;
                }
            }
            run.token.cancel();
        }
        told
    }

    /// Records why the node stops, then cancels its token (in that order, so
    /// whoever wakes up reads the reason).
    pub(super) fn stop_node(&self, node: &str, reason: &StopReason) -> bool {
        let running = self
            .deps
            .progress
            .get_mut(node)
            .filter(|p| p.outcome.is_none())
            .map(|mut p| {
                if p.stop.is_none() {
                    p.stop = Some(reason.clone());
                }
            })
            .is_some();
        if running {
            for run in self.runs.values().filter(|r| r.report.is_none()) {
                if let Some(t) = run.node_tokens.get(node) {
                    t.cancel();
                }
            }
        }
        running
    }

    pub(super) fn status(&self) -> StatusSnapshot {
        let mut runs: Vec<RunStatus> = self
            .runs
            .iter()
            .map(|(id, run)| RunStatus {
                run_id: id.clone(),
                nodepool: run.nodepool.clone(),
                trigger: run.trigger.clone(),
                nodes: run
                    .nodes
                    .iter()
                    .filter_map(|node| {
                        let p = self.deps.progress.get(node)?;
                        let (removed, planned) = p.removed_of_planned();
                        Some(NodeStatus {
                            node: node.clone(),
                            step: p.step_name(),
                            removed,
                            planned,
                            pdbs_refusing: p.pdb_refusals.keys().cloned().collect(),
                            restarts: p.restarts,
                            outcome: p.outcome.clone(),
                        })
                    })
                    .collect(),
            })
            .collect();
        runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        StatusSnapshot {
            runs,
            paused: self.paused,
            pending: self.pending.iter().map(|p| p.0.clone()).collect(),
        }
    }
}

/// Starts the supervised actor of one node of the run.
fn start_node(
    node: &str,
    cx: &Arc<RunContext>,
    tokens: &HashMap<String, CancellationToken>,
) -> Addr<NodeDrainActor> {
    let stop = tokens.get(node).cloned().unwrap_or_default();
    let (node, cx) = (node.to_string(), cx.clone());
    Supervisor::start(move |_| NodeDrainActor::new(node, cx, stop))
}
