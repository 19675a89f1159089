//! What every front of the daemon shares: whether it may take work (leader,
//! reconciled, not shutting down, not paused), the queue between the webhook
//! and the PlannerActor (202 only once a request is in it; full → 503), and
//! the requests both fronts make (drain a node, drain a NodePool's wave).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::actors::Actors;
use crate::alerts::dedupe::Dedupe;
use crate::alerts::rules::{Action, Rule};
use crate::cli::DrainOptions;
use crate::config::{current, SharedConfig};
use crate::drain::DrainSettings;
use crate::error::{Error, Result};
use crate::k8s::fence::Fence;
use crate::k8s::lease::{Contact, Role};
use crate::messages::{Admit, Admitted, MeasureAllocateRates, PlanWave, Release, StartRun, Target};

/// One queued request from an alert.
pub struct Job {
    pub admit: Admit,
}

pub struct Daemon {
    pub actors: Actors,
    pub config: SharedConfig,
    /// `--nodepool-name`, always managed.
    pub nodepool: String,
    pub opts: DrainOptions,
    pub max_nodes: usize,
    pub role: watch::Receiver<Role>,
    /// The leadership fence: a leader whose lease could not be renewed in
    /// time can write nothing, so it must not take work or look ready.
    pub fence: Fence,
    /// Set once the startup (takeover) reconciliation is done.
    pub reconciled: AtomicBool,
    pub shutting_down: AtomicBool,
    pub paused: AtomicBool,
    pub queue: mpsc::Sender<Job>,
    /// Shared with the requests it lets through, which forget their key when
    /// they end without a drain (`Admit::release`).
    pub dedupe: Arc<Mutex<Dedupe>>,
    /// The webhook's bearer token, re-read when its file changes.
    pub token: RwLock<Option<Vec<u8>>>,
    /// When the elector last heard from the API server, and how recent that
    /// must be for this replica to be healthy (`/readyz/replica`).
    pub contact: Contact,
    pub contact_window: Duration,
    /// The running rotations (admin `rotate`, the rule action `rotate-nodepool`,
    /// a new leader resuming recorded ones): one per NodePool at most.
    pub rotations: Arc<crate::rotation::daemon::Rotations>,
}

impl Daemon {
    /// None when the daemon takes work now; else why not.
    pub fn unavailable(&self) -> Option<String> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Some("shutting down".into());
        }
        match &*self.role.borrow() {
            // A leader whose lease could not be renewed in time writes
            // nothing: an alert it took would be lost.
            Role::Leader if !self.fence.is_open() => {
                return Some("the leadership lease could not be renewed in time (fenced)".into())
            }
            Role::Leader => {}
            Role::Follower { holder } => {
                return Some(format!(
                    "not the leader (the lease is held by {})",
                    holder.as_deref().unwrap_or("nobody yet")
                ))
            }
        }
        if !self.reconciled.load(Ordering::SeqCst) {
            return Some("the leader is still reconciling the nodes it took over".into());
        }
        if self.paused.load(Ordering::SeqCst) {
            return Some("intake is paused (node-drain admin resume)".into());
        }
        None
    }

    /// None when this replica is healthy, leader or follower: not shutting
    /// down, its elector answered recently, and, if leader, its fence open.
    pub fn unhealthy(&self) -> Option<String> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Some("shutting down".into());
        }
        if *self.role.borrow() == Role::Leader && !self.fence.is_open() {
            return Some("the leadership lease could not be renewed in time (fenced)".into());
        }
        if !self.contact.within(self.contact_window) {
            return Some(format!(
                "no answer from the API server about the Lease within {:?}",
                self.contact_window
            ));
        }
        None
    }

    pub fn nodepools(&self) -> Vec<String> {
        current(&self.config).nodepools(&self.nodepool)
    }

    /// The settings of a drain a rule (or none: the admin socket) asks for.
    pub fn settings(&self, rule: Option<&Rule>) -> DrainSettings {
        let mut s = self
            .opts
            .settings(rule.and_then(|r| r.force).unwrap_or(false));
        if let Some(rule) = rule {
            s.retire = rule.retire.unwrap_or(s.retire);
            s.on_timeout = rule.on_timeout.unwrap_or(s.on_timeout);
            if let Some(t) = rule
                .drain_timeout
                .as_deref()
                .and_then(|t| crate::duration::parse_go_duration(t).ok())
            {
                s.drain_timeout = t;
            }
        }
        s
    }

    pub fn admit(
        &self,
        action: Action,
        target: Target,
        settings: DrainSettings,
        trigger: String,
        release: Option<Release>,
    ) -> Admit {
        Admit {
            action,
            target,
            settings,
            trigger,
            nodepools: self.nodepools(),
            max_nodes: self.max_nodes,
            release,
        }
    }

    /// Forgets `key` in the dedupe when called.
    pub fn release(&self, key: crate::alerts::dedupe::Key) -> Release {
        let dedupe = self.dedupe.clone();
        Release::new(move || {
            if let Ok(mut d) = dedupe.lock() {
                d.forget(&key);
            }
        })
    }

    /// An error unless this daemon manages `nodepool`.
    pub fn managed(&self, nodepool: &str) -> Result<()> {
        let managed = self.nodepools();
        if managed.iter().any(|p| p == nodepool) {
            return Ok(());
        }
        Err(Error::Usage(format!(
            "NodePool {nodepool:?} is not managed by this daemon ({})",
            managed.join(", ")
        )))
    }

    /// One wave of `nodepool`, planned as `drain` plans it (the allocate rate,
    /// budgets, caps); started unless `dry_run`. Answers the plan and the run.
    pub async fn drain_nodepool(
        &self,
        nodepool: &str,
        settings: DrainSettings,
        trigger: String,
        dry_run: bool,
    ) -> Result<Value> {
        self.managed(nodepool)?;
        let metrics = self.actors.metrics.as_ref().ok_or_else(|| {
            Error::Usage("drain-nodepool needs Prometheus (--prometheus-address)".into())
        })?;
        let rates = metrics
            .send(MeasureAllocateRates {
                nodepool: nodepool.into(),
            })
            .await
            .map_err(mailbox)??;
        let plan = self
            .actors
            .planner
            .send(PlanWave {
                nodepool: nodepool.into(),
                rates: Some(rates),
                target_allocate_rate: 99,
                max_nodes: Some(self.max_nodes),
                nodes: vec![],
                force: settings.force,
                list_named_pods: dry_run,
            })
            .await
            .map_err(mailbox)??;
        let chosen: Vec<String> = plan.chosen().map(|n| n.candidate.node.clone()).collect();
        let mut answer = json!({"plan": plan});
        if dry_run || chosen.is_empty() {
            return Ok(answer);
        }
        let run_id = self
            .actors
            .planner
            .send(StartRun {
                nodepool: nodepool.into(),
                nodes: chosen,
                settings,
                trigger,
                plan: Some(plan),
                take_over: None,
            })
            .await
            .map_err(mailbox)??;
        answer["run_id"] = json!(run_id);
        Ok(answer)
    }
}

pub fn mailbox(e: actix::MailboxError) -> Error {
    Error::Internal(format!("the actors are gone: {e}"))
}

/// Admits queued alerts one by one, in order; logs and counts each outcome.
pub async fn run_queue(daemon: std::sync::Arc<Daemon>, mut rx: mpsc::Receiver<Job>) {
    let metrics = crate::telemetry::metrics::get();
    while let Some(job) = rx.recv().await {
        let trigger = job.admit.trigger.clone();
        // Forgotten unless the alert is settled, so its next send counts.
        let release = job.admit.release.clone();
        let unsettled = || {
            if let Some(r) = &release {
                r.forget();
            }
        };
        if job.admit.action == Action::RotateNodepool {
            rotate_for_alert(&daemon, job, &trigger).await;
            continue;
        }
        if job.admit.action == Action::DrainNodepool {
            let pool = match &job.admit.target {
                Target::Labels(labels) => labels.get("nodepool").cloned(),
                Target::Node(_) => None,
            };
            let Some(pool) = pool else {
                metrics.alert("ignored", "no-nodepool-label");
                warn!(
                    trigger = trigger.as_str(),
                    "drain-nodepool needs a nodepool label on the alert"
                );
                continue;
            };
            match daemon
                .drain_nodepool(&pool, job.admit.settings, trigger.clone(), false)
                .await
            {
                Ok(v) => {
                    metrics.alert("accepted", "started");
                    info!(trigger = trigger.as_str(), run = %v["run_id"], "NodePool wave admitted");
                }
                Err(e) => {
                    metrics.alert("ignored", e.metric_label());
                    warn!(trigger = trigger.as_str(), error = %e, "NodePool wave not admitted");
                    unsettled();
                }
            }
            continue;
        }
        match daemon.actors.planner.send(job.admit).await {
            Ok(Ok(admitted)) => {
                let (outcome, reason) = match &admitted {
                    Admitted::Started { .. } | Admitted::Cordoned { .. } => {
                        ("accepted", "started".to_string())
                    }
                    Admitted::Queued { .. } => ("accepted", "queued".to_string()),
                    Admitted::Ignored { metric, .. } => ("ignored", metric.clone()),
                    // Said once; the alerts that find the same blockers are repeats.
                    Admitted::Blocked { repeat, .. } => (
                        if *repeat { "duplicate" } else { "ignored" },
                        "blocked".into(),
                    ),
                };
                metrics.alert(outcome, &reason);
                info!(trigger = trigger.as_str(), admitted = %json!(admitted), "alert admitted");
                if !admitted.settles_alert() {
                    unsettled();
                }
            }
            Ok(Err(e)) => {
                metrics.alert("ignored", e.metric_label());
                warn!(trigger = trigger.as_str(), error = %e, "alert not admitted");
                unsettled();
            }
            Err(e) => {
                warn!(error = %e, "the planner is gone");
                unsettled();
            }
        }
    }
}

/// The rule action `rotate-nodepool`: the rotation of the alert's `nodepool`
/// label, started on the registry (a rotating NodePool answers "already
/// rotating", which settles the alert too).
async fn rotate_for_alert(daemon: &std::sync::Arc<Daemon>, job: Job, trigger: &str) {
    let metrics = crate::telemetry::metrics::get();
    let pool = match &job.admit.target {
        Target::Labels(labels) => labels.get("nodepool").cloned(),
        Target::Node(_) => None,
    };
    let unsettled = || {
        if let Some(r) = &job.admit.release {
            r.forget();
        }
    };
    let Some(pool) = pool else {
        metrics.alert("ignored", "no-nodepool-label");
        warn!(
            trigger,
            "rotate-nodepool needs a nodepool label on the alert"
        );
        return;
    };
    let started = match daemon.managed(&pool) {
        Ok(()) => {
            daemon
                .rotations
                .start(&pool, job.admit.settings, trigger.to_string())
                .await
        }
        Err(e) => Err(e),
    };
    match started {
        Ok(v) if v["started"] == json!(false) => {
            // Settled too: the one rotation of the NodePool is running.
            metrics.alert("duplicate", "already-rotating");
            info!(trigger, answer = %v, "NodePool rotation not started: {}", v["message"].as_str().unwrap_or("already rotating"));
        }
        Ok(v) => {
            metrics.alert("accepted", "started");
            info!(trigger, answer = %v, "NodePool rotation admitted");
        }
        Err(e) => {
            metrics.alert("ignored", e.metric_label());
            warn!(trigger, error = %e, "NodePool rotation not admitted");
            unsettled();
        }
    }
}

/// Re-reads the token file every `period`. A missing or empty file keeps
/// the last good token (a Secret being rotated can be empty for a moment) and
/// says so; with no token ever read, every webhook is answered 503, which
/// Alertmanager retries (a 401 it would drop).
pub fn watch_token(daemon: std::sync::Arc<Daemon>, path: std::path::PathBuf, period: Duration) {
    tokio::spawn(async move {
        let mut warned = false;
        loop {
            let read = std::fs::read(&path)
                .ok()
                .map(|t| t.trim_ascii().to_vec())
                .filter(|t| !t.is_empty());
            match read {
                None if !warned => {
                    warned = true;
                    let kept = daemon.token.read().map(|t| t.is_some()).unwrap_or(false);
                    if kept {
                        warn!(path = %path.display(), "the webhook token file is missing or empty: keeping the last good token");
                    } else {
                        warn!(path = %path.display(), "the webhook token file is missing or empty: no token yet, every webhook is answered 503");
                    }
                }
                None => {}
                Some(token) => {
                    warned = false;
                    let changed = daemon
                        .token
                        .read()
                        .map(|t| t.as_deref() != Some(token.as_slice()))
                        .unwrap_or(true);
                    if changed {
                        info!(path = %path.display(), "webhook token loaded");
                        if let Ok(mut t) = daemon.token.write() {
                            *t = Some(token);
                        }
                    }
                }
            }
            tokio::time::sleep(period).await;
        }
    });
}
