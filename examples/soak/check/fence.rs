//! Writes by a process whose fence had closed, from the audit log.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Row, FENCE_TOLERANCE_MS, RENEW_DEADLINE_MS};
use crate::audit::Request;

/// A write sent by a process whose fence had closed: more than the renew
/// deadline after its last successful Lease write, or after another identity
/// took the Lease.
pub(super) fn writes_after_fence(requests: &[Request], lease: &str) -> Row {
    let mut renewed = BTreeMap::<&str, DateTime<Utc>>::new();
    let mut holder_since: Option<(&str, DateTime<Utc>)> = None;
    let mut cases = Vec::new();
    for r in requests {
        if r.is_lease(lease) {
            if r.is_write() && r.ok() {
                renewed.insert(&r.identity, r.at);
                if holder_since.is_none_or(|(h, _)| h != r.identity) {
                    holder_since = Some((&r.identity, r.at));
                }
            }
            continue;
        }
        if !r.is_write() {
            continue;
        }
        let case = match renewed.get(r.identity.as_str()) {
            None => Some("never held the Lease".to_string()),
            Some(t) if (r.at - *t).num_milliseconds() > RENEW_DEADLINE_MS + FENCE_TOLERANCE_MS => {
                Some(format!(
                    "{} ms after its last renewal",
                    (r.at - *t).num_milliseconds()
                ))
            }
            Some(_) => match holder_since {
                Some((h, since)) if h != r.identity => Some(format!(
                    "{h} holds the Lease since {}",
                    since.format("%H:%M:%S%.3f")
                )),
                _ => None,
            },
        };
        cases.extend(case.map(|c| format!("{}: {c}", r.describe())));
    }
    Row {
        name: "writes by a replica after its fence closed",
        cases,
    }
}
