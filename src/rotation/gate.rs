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
    /// Held until the maintenance window opens, on its window's zone (None:
    /// no opening ahead).
    WindowClosed { opens: Option<jiff::Zoned> },
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

/// What a wait tells people (Slack) beyond the log: a rotation held by closed
/// maintenance windows, once a wait, and released when one opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateNews {
    WindowHeld { opens: Option<jiff::Zoned> },
    WindowOpened,
}

/// Waits until the gate opens. Answers true when the rotation must stop
/// (the gate says so, or `cancel`). Each new reason to wait is logged once;
/// a wait for a window is told once (`tell`), and its end, whatever pauses
/// or new openings came between.
pub async fn wait_open(
    gate: &Gate,
    nodepool: &str,
    cancel: &CancellationToken,
    tell: &mut (dyn FnMut(GateNews) + Send),
) -> bool {
    let mut said: Option<WaveGate> = None;
    let mut told_window = false;
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
                if told_window {
                    tell(GateNews::WindowOpened);
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
                let at = opens.as_ref().map(|z| z.timestamp().to_string());
                info!(
                    nodepool,
                    opens = at.as_deref().unwrap_or("never"),
                    opensLocal = %crate::slack::opening(opens.as_ref()),
                    "rotation waiting for the maintenance window opening at {}",
                    at.as_deref().unwrap_or("(none ahead)")
                );
                if !told_window {
                    told_window = true;
                    tell(GateNews::WindowHeld {
                        opens: opens.clone(),
                    });
                }
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

    /// A gate answering each of `answers` once, then `Open`.
    fn answering(answers: Vec<WaveGate>) -> (Gate, Arc<AtomicUsize>) {
        let looks = Arc::new(AtomicUsize::new(0));
        let l = looks.clone();
        let gate = Gate::new(move || {
            let i = l.fetch_add(1, Ordering::SeqCst);
            answers.get(i).cloned().unwrap_or(WaveGate::Open)
        });
        (gate, looks)
    }

    fn ignore(_: GateNews) {}

    #[tokio::test]
    async fn a_shut_gate_holds_the_wave_until_it_opens() {
        for shut in [WaveGate::Paused, WaveGate::WindowClosed { opens: None }] {
            let (gate, looks) = answering(vec![shut.clone()]);
            let stop = wait_open(&gate, "p", &CancellationToken::new(), &mut ignore).await;
            assert_eq!((stop, looks.load(Ordering::SeqCst)), (false, 2), "{shut:?}");
        }
    }

    #[tokio::test]
    async fn a_wait_for_a_window_is_told_once_and_its_end_once() {
        let opens = |at: &str| WaveGate::WindowClosed {
            opens: Some(
                at.parse::<jiff::Timestamp>()
                    .unwrap()
                    .to_zoned(jiff::tz::TimeZone::get("Asia/Seoul").unwrap()),
            ),
        };
        let first = opens("2026-11-29T13:00:00Z");
        // Closed, again, a pause, closed again, a new opening (config reloaded): one wait.
        let (gate, _) = answering(vec![
            first.clone(),
            first.clone(),
            WaveGate::Paused,
            first.clone(),
            opens("2026-11-29T14:00:00Z"),
        ]);
        let mut told = vec![];
        let stop = wait_open(&gate, "p", &CancellationToken::new(), &mut |n| told.push(n)).await;
        let WaveGate::WindowClosed { opens } = first else {
            unreachable!()
        };
        assert!(!stop);
        assert_eq!(
            told,
            vec![GateNews::WindowHeld { opens }, GateNews::WindowOpened]
        );
        // A pause alone is not a window: nothing told.
        let (gate, _) = answering(vec![WaveGate::Paused]);
        let mut told = vec![];
        wait_open(&gate, "p", &CancellationToken::new(), &mut |n| told.push(n)).await;
        assert_eq!(told, vec![]);
    }

    #[tokio::test]
    async fn stop_and_cancel_end_the_wait() {
        let (gate, _) = answering(vec![WaveGate::Stop]);
        assert!(wait_open(&gate, "p", &CancellationToken::new(), &mut ignore).await);
        let paused = Gate::new(|| WaveGate::Paused);
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            c.cancel();
        });
        assert!(wait_open(&paused, "p", &cancel, &mut ignore).await);
        assert!(
            !wait_open(
                &Gate::default(),
                "p",
                &CancellationToken::new(),
                &mut ignore
            )
            .await
        );
    }
}
