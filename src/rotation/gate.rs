//! What may hold a rotation between waves: a pause, a cancel, a closed
//! maintenance window. The engine asks its `Gate` before each wave (never
//! during one: a wave in flight finishes) and waits, cancellably, while the
//! gate is shut. The CLI's gate is always open; the daemon's reads its
//! current config's windows and the rotation's pause and cancel.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

/// The gate's answer before a wave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaveGate {
    /// The next wave may start.
    Open,
    /// Held until resumed.
    Paused,
    /// Held until the maintenance window opens (None: no opening ahead).
    WindowClosed { opens: Option<jiff::Timestamp> },
    /// Stop the rotation now (between waves).
    Stop,
}

/// Asked before each wave.
#[derive(Clone)]
pub struct Gate(Arc<dyn Fn() -> WaveGate + Send + Sync>);

impl Gate {
    pub fn new(f: impl Fn() -> WaveGate + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub fn check(&self) -> WaveGate {
        (self.0)()
    }
}

impl Default for Gate {
    /// Always open: the CLI has no windows, no pause.
    fn default() -> Self {
        Self::new(|| WaveGate::Open)
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gate")
    }
}

/// How often a shut gate is asked again.
const POLL: Duration = Duration::from_secs(1);

/// Waits until the gate opens. Answers true when the rotation must stop
/// (the gate says so, or `cancel`). Each new reason to wait is logged once.
pub async fn wait_open(gate: &Gate, nodepool: &str, cancel: &CancellationToken) -> bool {
    let mut said: Option<WaveGate> = None;
    loop {
        if cancel.is_cancelled() {
            return true;
        }
        let now = gate.check();
        match &now {
            WaveGate::Open => {
                if said.is_some() {
                    info!(nodepool, "rotation released: the next wave starts");
                }
                return false;
            }
            WaveGate::Stop => return true,
            _ if said.as_ref() == Some(&now) => {}
            WaveGate::Paused => {
                info!(
                    nodepool,
                    "rotation paused: the next wave waits for a resume"
                );
            }
            WaveGate::WindowClosed { opens } => {
                let opens = opens.map(|t| t.to_string());
                info!(
                    nodepool,
                    opens = opens.as_deref().unwrap_or("never"),
                    "rotation waiting for the maintenance window opening at {}",
                    opens.as_deref().unwrap_or("(none ahead)")
                );
            }
        }
        said = Some(now);
        tokio::select! {
            _ = cancel.cancelled() => return true,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A gate answering `shut` for its first `n` looks, then `Open`.
    fn shut_for(n: usize, shut: WaveGate) -> (Gate, Arc<AtomicUsize>) {
        let looks = Arc::new(AtomicUsize::new(0));
        let l = looks.clone();
        let gate = Gate::new(move || {
            if l.fetch_add(1, Ordering::SeqCst) < n {
                shut.clone()
            } else {
                WaveGate::Open
            }
        });
        (gate, looks)
    }

    #[tokio::test]
    async fn a_shut_gate_holds_the_wave_until_it_opens() {
        for shut in [WaveGate::Paused, WaveGate::WindowClosed { opens: None }] {
            let (gate, looks) = shut_for(1, shut.clone());
            let stop = wait_open(&gate, "p", &CancellationToken::new()).await;
            assert_eq!((stop, looks.load(Ordering::SeqCst)), (false, 2), "{shut:?}");
        }
    }

    #[tokio::test]
    async fn stop_and_cancel_end_the_wait() {
        let (gate, _) = shut_for(usize::MAX, WaveGate::Stop);
        assert!(wait_open(&gate, "p", &CancellationToken::new()).await);
        let (gate, _) = shut_for(usize::MAX, WaveGate::Paused);
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            c.cancel();
        });
        assert!(wait_open(&gate, "p", &cancel).await);
        assert!(!wait_open(&Gate::default(), "p", &CancellationToken::new()).await);
    }
}
