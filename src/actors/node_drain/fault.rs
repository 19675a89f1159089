//! A test-only fault hook: `NODE_DRAIN_TEST_FAULT=<point>[:panic|:kill]` fails
//! (or panics) each node's actor once at that point, so tests can prove that a
//! restart resumes from recorded progress; `:kill` SIGKILLs the whole process
//! there (the daemon's crash tests). Points: `intent` (before the claim),
//! `cordon` (after the claim), `evict` (while the first eviction is in flight),
//! `wait`, `retire` (before the drained record), `drained` (after it, before
//! the NodeClaim is deleted).

use tracing::warn;

use super::{RunContext, StepError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub point: &'static str,
    pub panic: bool,
    pub kill: bool,
}

impl Fault {
    pub fn from_env() -> Option<Self> {
        let value = std::env::var("NODE_DRAIN_TEST_FAULT").ok()?;
        let (point, panic, kill) = match value.split_once(':') {
            Some((p, "panic")) => (p.to_string(), true, false),
            Some((p, "kill")) => (p.to_string(), false, true),
            _ => (value.clone(), false, false),
        };
        let point = ["intent", "cordon", "evict", "wait", "retire", "drained"]
            .into_iter()
            .find(|p| *p == point)?;
        Some(Self { point, panic, kill })
    }
}

/// Fires the test fault once per node, at `point`.
pub fn fire(cx: &RunContext, node: &str, point: &'static str) -> Result<(), StepError> {
    let Some(f) = cx.fault else {
        return Ok(());
    };
    if f.point != point {
        return Ok(());
    }
    let first = cx
        .progress
        .get_mut(node)
        .map(|mut p| p.faults_fired.insert(point))
        .unwrap_or(false);
    if !first {
        return Ok(());
    }
    warn!(node, point, "test fault: failing the node's actor");
    if f.panic {
        panic!("test fault: panic at {point}");
    }
    if f.kill {
        warn!(node, point, "test fault: SIGKILL to this process");
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
    Err(StepError::Fault(point))
}
