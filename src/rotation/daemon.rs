//! The daemon's running rotations: at most one per NodePool, whatever asked
//! (`admin rotate`, the rule action `rotate-nodepool`, a new leader resuming
//! a recorded one). Each runs the engine in its own task with a gate that
//! holds the next wave while the rotation is paused or the maintenance
//! windows of the daemon's current config are closed; a cancel stops it
//! after the wave in flight and removes its record from the NodePool.
//! The pause is recorded on the NodePool (`record::PAUSED_ANNOTATION`), so a
//! restarted or new leader resumes a paused rotation paused.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::gate::{Gate, WaveGate};
use super::{record, RotationDeps, RotationSettings};
use crate::config::{current, SharedConfig};
use crate::drain::DrainSettings;
use crate::error::{Error, Result};

/// What the admin socket asks of a running rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[derive(clap::ValueEnum)]
pub enum RotationAction {
    Pause,
    Resume,
    Cancel,
}

/// What every rotation of this daemon shares, set once `serve` has its client.
pub struct Setup {
    pub deps: RotationDeps,
    /// The daemon's rotation flags; `nodepool`, `drain`, `trigger` and `gate` are per rotation.
    pub base: RotationSettings,
    /// The daemon's config, re-read when it changes: its windows gate the waves.
    pub config: SharedConfig,
}

impl Setup {
    /// What every rotation of this daemon shares: its actors, its flags, its
    /// config (whose maintenance windows gate the waves).
    pub fn for_daemon(
        global: &crate::cli::GlobalArgs,
        args: &crate::cli::ServeArgs,
        client: kube::Client,
        actors: &crate::actors::Actors,
        config: crate::config::SharedConfig,
    ) -> Setup {
        let r = &args.rotation;
        let placeholder_namespace =
            crate::identity::namespace_or_own(r.placeholder_namespace.as_deref());
        Setup {
            deps: crate::rotation::RotationDeps {
                client,
                planner: actors.planner.clone(),
                metrics: actors.metrics.clone(),
                notifier: actors.notifier.clone(),
                cluster: global.cluster_name.clone(),
            },
            base: crate::rotation::RotationSettings {
                nodepool: String::new(),
                target_allocate_rate: 99,
                max_nodes: Some(args.max_nodes as usize),
                drain: args.opts.settings(false),
                capacity_first: r.capacity_first,
                capacity_timeout: r.capacity_timeout,
                placeholder_namespace,
                placeholder_image: r.placeholder_image.clone(),
                settle_timeout: r.settle_timeout,
                stall_timeout: r.stall_timeout,
                trigger: String::new(),
                gate: Default::default(),
            },
            config,
        }
    }
}

/// One running rotation, as its gate and the status see it.
struct Control {
    paused: AtomicBool,
    cancelled: AtomicBool,
    /// The gate's last answer: what the rotation waits for now (Open: a wave runs).
    waiting: Mutex<WaveGate>,
    trigger: String,
}

#[derive(Default)]
pub struct Rotations {
    setup: OnceLock<Setup>,
    running: Mutex<BTreeMap<String, Arc<Control>>>,
}

impl Rotations {
    pub fn configure(&self, setup: Setup) {
        let _ = self.setup.set(setup);
    }

    fn setup(&self) -> Result<&Setup> {
        self.setup
            .get()
            .ok_or_else(|| Error::Usage("rotation is not configured in this process".into()))
    }

    fn get(&self, nodepool: &str) -> Option<Arc<Control>> {
        self.running.lock().ok()?.get(nodepool).cloned()
    }

    /// Starts (or resumes, from its record) the rotation of `nodepool`; a
    /// second request for a rotating NodePool answers "already rotating".
    pub async fn start(
        self: &Arc<Self>,
        nodepool: &str,
        drain: DrainSettings,
        trigger: String,
    ) -> Result<Value> {
        let setup = self.setup()?;
        let client = setup.deps.client.clone();
        let paused = record::read_paused(&client, nodepool).await?;
        let control = self.running.lock().ok().and_then(|mut running| {
            if running.contains_key(nodepool) {
                return None;
            }
            let control = Arc::new(Control {
                paused: AtomicBool::new(paused),
                cancelled: AtomicBool::new(false),
                waiting: Mutex::new(WaveGate::Open),
                trigger: trigger.clone(),
            });
            running.insert(nodepool.to_string(), control.clone());
            Some(control)
        });
        let Some(control) = control else {
            return Ok(json!({
                "started": false,
                "message": format!("already rotating NodePool {nodepool}"),
                "rotation": self.describe(nodepool).await,
            }));
        };
        let mut settings = setup.base.clone();
        settings.nodepool = nodepool.to_string();
        settings.drain = drain;
        settings.trigger = trigger.clone();
        settings.gate = gate(control.clone(), setup.config.clone());
        let deps = setup.deps.clone();
        let registry = self.clone();
        let pool = nodepool.to_string();
        info!(
            nodepool,
            trigger = trigger.as_str(),
            paused,
            "rotation starting"
        );
        tokio::spawn(async move {
            let summary =
                super::rotate(&deps, &settings, &CancellationToken::new(), &mut |_| {}).await;
            match &summary {
                Ok(s) => info!(
                    nodepool = pool.as_str(),
                    finished = s.finished,
                    replaced = s.replaced.len(),
                    skipped = s.skipped.len(),
                    "daemon rotation ended"
                ),
                Err(e) => {
                    warn!(nodepool = pool.as_str(), error = %e, "daemon rotation failed (progress kept on the NodePool)")
                }
            }
            if control.cancelled.load(Ordering::SeqCst) {
                // Cancelled: the record goes, so no leader resumes it.
                let cleared = record::clear(&deps.client, &pool).await;
                let unpaused = record::write_paused(&deps.client, &pool, false).await;
                if let Err(e) = cleared.and(unpaused) {
                    warn!(nodepool = pool.as_str(), error = %e, "could not remove the cancelled rotation's record");
                } else {
                    info!(
                        nodepool = pool.as_str(),
                        "rotation cancelled: its record is removed from the NodePool"
                    );
                }
            }
            if let Ok(mut running) = registry.running.lock() {
                running.remove(&pool);
            }
        });
        Ok(json!({"started": true, "nodepool": nodepool, "paused": paused}))
    }

    /// What a rotation of `nodepool` would do now (nothing is touched).
    pub async fn preflight(&self, nodepool: &str) -> Result<super::preflight::Preflight> {
        let setup = self.setup()?;
        let mut settings = setup.base.clone();
        settings.nodepool = nodepool.to_string();
        super::preflight::preflight(&setup.deps, &settings).await
    }

    /// Pause, resume or cancel the rotation of `nodepool`.
    pub async fn control(&self, nodepool: &str, action: RotationAction) -> Result<Value> {
        let setup = self.setup()?;
        let control = self
            .get(nodepool)
            .ok_or_else(|| Error::Usage(format!("NodePool {nodepool} is not rotating")))?;
        match action {
            RotationAction::Pause | RotationAction::Resume => {
                let paused = action == RotationAction::Pause;
                // Recorded first: a pause that answered ok survives a restart.
                record::write_paused(&setup.deps.client, nodepool, paused).await?;
                control.paused.store(paused, Ordering::SeqCst);
            }
            RotationAction::Cancel => control.cancelled.store(true, Ordering::SeqCst),
        }
        info!(nodepool, action = ?action, "rotation control");
        Ok(
            json!({"nodepool": nodepool, "action": action, "rotation": self.describe(nodepool).await}),
        )
    }

    /// Resumes every unfinished rotation recorded on `nodepools` (a new leader).
    pub async fn resume_recorded(self: &Arc<Self>, nodepools: &[String], drain: DrainSettings) {
        let Ok(setup) = self.setup() else { return };
        for pool in nodepools {
            match record::read(&setup.deps.client, pool).await {
                Ok(Some(rec)) => {
                    info!(
                        nodepool = pool.as_str(),
                        run = rec.run_id.as_str(),
                        "resuming the rotation recorded on the NodePool"
                    );
                    let trigger = format!("the leader resuming rotation {}", rec.run_id);
                    if let Err(e) = self.start(pool, drain.clone(), trigger).await {
                        warn!(nodepool = pool.as_str(), error = %e, "could not resume the rotation");
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(nodepool = pool.as_str(), error = %e, "could not read the rotation record")
                }
            }
        }
    }

    /// Every running rotation: its record's progress and what it waits for.
    pub async fn status(&self) -> Vec<Value> {
        let pools: Vec<String> = match self.running.lock() {
            Ok(r) => r.keys().cloned().collect(),
            Err(_) => vec![],
        };
        let mut out = vec![];
        for pool in pools {
            out.push(self.describe(&pool).await);
        }
        out
    }

    async fn describe(&self, nodepool: &str) -> Value {
        let Some(control) = self.get(nodepool) else {
            return json!({"nodepool": nodepool, "running": false});
        };
        let waiting = control
            .waiting
            .lock()
            .map(|w| w.clone())
            .unwrap_or(WaveGate::Open);
        let state = match &waiting {
            _ if control.cancelled.load(Ordering::SeqCst) => json!({"state": "cancelling"}),
            WaveGate::Open => json!({"state": "running"}),
            WaveGate::Paused => json!({"state": "paused"}),
            WaveGate::WindowClosed { opens } => json!({
                "state": "waiting-for-window",
                "opens": opens.as_ref().map(|z| z.timestamp()),
                "opensLocal": opens,
            }),
            WaveGate::Stop => json!({"state": "stopping"}),
        };
        let rec = match self.setup() {
            Ok(s) => record::read(&s.deps.client, nodepool).await.ok().flatten(),
            Err(_) => None,
        };
        json!({
            "nodepool": nodepool,
            "running": true,
            "trigger": control.trigger,
            "paused": control.paused.load(Ordering::SeqCst),
            "waiting": state,
            "runId": rec.as_ref().map(|r| r.run_id.clone()),
            "wavesDone": rec.as_ref().map(|r| r.waves.len()),
            "replaced": rec.as_ref().map(|r| r.replaced.clone()),
            "skipped": rec.as_ref().map(|r| r.skipped.clone()),
        })
    }
}

/// The daemon's gate: cancel, then pause, then the current config's windows.
fn gate(control: Arc<Control>, config: SharedConfig) -> Gate {
    Gate::new(move || {
        let answer = if control.cancelled.load(Ordering::SeqCst) {
            WaveGate::Stop
        } else if control.paused.load(Ordering::SeqCst) {
            WaveGate::Paused
        } else {
            match crate::maintenance::state(&current(&config).windows, jiff::Timestamp::now()) {
                crate::maintenance::WindowState::Closed { opens_local, .. } => {
                    WaveGate::WindowClosed { opens: opens_local }
                }
                _ => WaveGate::Open,
            }
        };
        if let Ok(mut w) = control.waiting.lock() {
            *w = answer.clone();
        }
        answer
    })
}
