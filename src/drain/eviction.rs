//! Where an eviction response is handled: one pure function maps the API
//! server's answer to what node-drain does next (SPEC §3 step 4), and one gives
//! the backoff for a PodDisruptionBudget refusal.
//!
//! | answer | verdict |
//! |---|---|
//! | 200/201 | evicted |
//! | 404, 409 (UID precondition: a new pod with that name) | already gone |
//! | 429 with a DisruptionBudget cause | PDB: back off with jitter, name the PDB once |
//! | 429 otherwise (API priority and fairness) | wait Retry-After (default 1 s) |
//! | 500 "more than one PodDisruptionBudget" | blocked: a person must fix the PDBs |
//! | 403 in a terminating namespace | retry later (the namespace deletes the pod) |
//! | other 5xx (etcd timeout, API server restarting) | retry later: transient |
//! | anything else | failed |

use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum EvictionVerdict {
    Evicted,
    AlreadyGone,
    /// A PDB refused: try again after `pdb_backoff`.
    RetryPdb {
        pdb: Option<String>,
    },
    /// API throttling: wait this long, then try again.
    RetryAfter {
        wait_ms: u64,
    },
    /// Cannot be evicted without a person (more than one PDB).
    Blocked {
        reason: String,
    },
    /// A transient refusal (terminating namespace): try again a little later.
    RetryLater {
        reason: String,
    },
    Failed {
        reason: String,
    },
}

/// Maps an eviction answer (HTTP code, the Status message, its causes'
/// `(reason, message)`, and `retryAfterSeconds`) to a verdict.
pub fn eviction_verdict(
    code: u16,
    message: &str,
    causes: &[(String, String)],
    retry_after_seconds: u32,
) -> EvictionVerdict {
    match code {
        200 | 201 => EvictionVerdict::Evicted,
        404 | 409 => EvictionVerdict::AlreadyGone,
        429 => {
            if let Some((_, cause)) = causes
                .iter()
                .find(|(reason, _)| reason == "DisruptionBudget")
            {
                EvictionVerdict::RetryPdb {
                    pdb: pdb_name(cause),
                }
            } else if message.contains("disruption budget") {
                EvictionVerdict::RetryPdb { pdb: None }
            } else {
                let seconds = if retry_after_seconds == 0 {
                    1
                } else {
                    retry_after_seconds.min(60)
                };
                EvictionVerdict::RetryAfter {
                    wait_ms: u64::from(seconds) * 1000,
                }
            }
        }
        500 if message.contains("more than one PodDisruptionBudget") => EvictionVerdict::Blocked {
            reason: message.to_string(),
        },
        403 if message.contains("being terminated") || message.contains("terminating") => {
            EvictionVerdict::RetryLater {
                reason: message.to_string(),
            }
        }
        500..=599 => EvictionVerdict::RetryLater {
            reason: format!("HTTP {code}: {message}"),
        },
        _ => EvictionVerdict::Failed {
            reason: format!("HTTP {code}: {message}"),
        },
    }
}

/// "The disruption budget web needs 2 healthy pods and has 2 currently" → "web".
fn pdb_name(cause: &str) -> Option<String> {
    let rest = cause.strip_prefix("The disruption budget ")?;
    rest.split_whitespace().next().map(str::to_string)
}

/// Backoff before retrying after a transient failure (5xx, no answer): 500 ms
/// doubling to 10 s, with the same jitter as `pdb_backoff`.
pub fn transient_backoff(attempt: u32, unit: f64) -> Duration {
    let base = (500u64 << attempt.min(5)).min(10_000) as f64;
    Duration::from_millis((base * (0.8 + 0.4 * unit)) as u64)
}

/// Backoff before retrying an eviction a PDB refused: 1 s doubling to 10 s,
/// with ±`jitter` (0..1) spread so that many pods do not retry in lockstep.
/// `unit` is a uniform random number in [0, 1).
pub fn pdb_backoff(attempt: u32, jitter: f64, unit: f64) -> Duration {
    let base = (1000u64 << attempt.min(4)).min(10_000) as f64;
    let factor = 1.0 + jitter * (2.0 * unit - 1.0);
    Duration::from_millis((base * factor).max(100.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (HTTP code, message, causes, retryAfterSeconds, expected verdict)
    type Case = (
        u16,
        &'static str,
        Vec<(String, String)>,
        u32,
        EvictionVerdict,
    );

    fn cause(reason: &str, message: &str) -> Vec<(String, String)> {
        vec![(reason.into(), message.into())]
    }

    #[test]
    fn response_table() {
        let pdb_msg = "Cannot evict pod as it would violate the pod's disruption budget.";
        let cases: Vec<Case> = vec![
            (201, "", vec![], 0, EvictionVerdict::Evicted),
            (200, "", vec![], 0, EvictionVerdict::Evicted),
            (404, "pods \"x\" not found", vec![], 0, EvictionVerdict::AlreadyGone),
            (409, "Precondition failed: UID in precondition: a, UID in object meta: b", vec![], 0, EvictionVerdict::AlreadyGone),
            (
                429,
                pdb_msg,
                cause("DisruptionBudget", "The disruption budget web needs 2 healthy pods and has 2 currently"),
                0,
                EvictionVerdict::RetryPdb { pdb: Some("web".into()) },
            ),
            (429, pdb_msg, vec![], 0, EvictionVerdict::RetryPdb { pdb: None }),
            (429, "Too many requests, please try again later.", vec![], 1, EvictionVerdict::RetryAfter { wait_ms: 1000 }),
            (429, "Too many requests", vec![], 7, EvictionVerdict::RetryAfter { wait_ms: 7000 }),
            (429, "Too many requests", vec![], 0, EvictionVerdict::RetryAfter { wait_ms: 1000 }),
            (429, "Too many requests", vec![], 3600, EvictionVerdict::RetryAfter { wait_ms: 60_000 }),
            (
                500,
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                vec![],
                0,
                EvictionVerdict::Blocked {
                    reason: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
                },
            ),
            (
                403,
                "pods \"x\" is forbidden: unable to create new content in namespace ns because it is being terminated",
                vec![],
                0,
                EvictionVerdict::RetryLater {
                    reason: "pods \"x\" is forbidden: unable to create new content in namespace ns because it is being terminated".into(),
                },
            ),
            (403, "forbidden: RBAC", vec![], 0, EvictionVerdict::Failed { reason: "HTTP 403: forbidden: RBAC".into() }),
            (500, "etcdserver: timeout", vec![], 0, EvictionVerdict::RetryLater { reason: "HTTP 500: etcdserver: timeout".into() }),
            (503, "service unavailable", vec![], 0, EvictionVerdict::RetryLater { reason: "HTTP 503: service unavailable".into() }),
            (422, "invalid", vec![], 0, EvictionVerdict::Failed { reason: "HTTP 422: invalid".into() }),
        ];
        for (code, message, causes, retry, want) in cases {
            assert_eq!(
                eviction_verdict(code, message, &causes, retry),
                want,
                "{code} {message}"
            );
        }
    }

    #[test]
    fn pdb_backoff_grows_caps_and_jitters() {
        assert_eq!(pdb_backoff(0, 0.0, 0.5), Duration::from_secs(1));
        assert_eq!(pdb_backoff(1, 0.0, 0.5), Duration::from_secs(2));
        assert_eq!(pdb_backoff(3, 0.0, 0.5), Duration::from_secs(8));
        assert_eq!(pdb_backoff(4, 0.0, 0.5), Duration::from_secs(10));
        assert_eq!(pdb_backoff(30, 0.0, 0.5), Duration::from_secs(10));
        assert_eq!(pdb_backoff(0, 0.2, 0.0), Duration::from_millis(800));
        assert_eq!(pdb_backoff(0, 0.2, 0.999_999), Duration::from_millis(1199));
    }
}
