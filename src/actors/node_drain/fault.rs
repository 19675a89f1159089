//! A test-only fault hook: `NODE_DRAIN_TEST_FAULT=<point>[:panic|:kill]` fails
//! (or panics) each node's actor once at that point, so tests can prove that a
//! restart resumes from recorded progress; `:kill` SIGKILLs the whole process
//! there (the daemon's crash tests). Points: `intent` (before the claim),
//! `cordon` (after the claim), `evict` (while the first eviction is in flight),
//! `wait`, `retire` (before the drained record), `drained` (after it, before
//! the NodeClaim is deleted). Debug builds only: a release build never reads
//! the variable and has no code that kills the process.

use tracing::warn;

use super::{RunContext, StepError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub point: &'static str,
    pub panic: bool,
    pub kill: bool,
}

impl Fault {
    /// The hook as `NODE_DRAIN_TEST_FAULT` asks, in debug builds (what the
    /// tests run). A release build has none: the variable is never read.
    #[cfg(debug_assertions)]
    pub fn from_env() -> Option<Self> {
        Self::parse(&std::env::var("NODE_DRAIN_TEST_FAULT").ok()?)
    }

    /// A release build has no fault hook: it can never fail or SIGKILL itself
    /// because of the environment it is given.
    #[cfg(not(debug_assertions))]
    pub fn from_env() -> Option<Self> {
        None
    }

    /// `<point>[:panic|:kill]`; an unknown point is no fault.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub fn parse(value: &str) -> Option<Self> {
        let (point, panic, kill) = match value.split_once(':') {
            Some((p, "panic")) => (p.to_string(), true, false),
            Some((p, "kill")) => (p.to_string(), false, true),
            _ => (value.to_string(), false, false),
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
    #[cfg(debug_assertions)]
    if f.kill {
        warn!(node, point, "test fault: SIGKILL to this process");
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
    Err(StepError::Fault(point))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_is_read_as_point_and_mode() {
        let f = |p, panic, kill| {
            Some(Fault {
                point: p,
                panic,
                kill,
            })
        };
        assert_eq!(Fault::parse("evict"), f("evict", false, false));
        assert_eq!(Fault::parse("wait:panic"), f("wait", true, false));
        assert_eq!(Fault::parse("drained:kill"), f("drained", false, true));
        assert_eq!(Fault::parse("nowhere"), None);
    }

    /// Runs only in a release build (`cargo test --release`).
    #[cfg(not(debug_assertions))]
    #[test]
    fn a_release_build_has_no_fault_hook() {
        std::env::set_var("NODE_DRAIN_TEST_FAULT", "intent:kill");
        assert_eq!(Fault::from_env(), None);
    }
}
