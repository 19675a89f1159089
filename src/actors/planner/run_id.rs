//! Run ids: what a Node's record names as its owner, so never the same for two runs.

use crate::messages::RunId;

/// A run's id: the NodePool and the start (for people), and a UUID (v4, 122
/// random bits) so that two runs are never both "ours" by chance.
pub fn new_run_id(nodepool: &str, now: chrono::DateTime<chrono::Utc>) -> RunId {
    format!(
        "{}-{}-{}",
        nodepool,
        now.format("%Y%m%dT%H%M%SZ"),
        uuid::Uuid::new_v4()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_started_in_the_same_second_never_collide() {
        let now = chrono::Utc::now();
        let ids: std::collections::HashSet<RunId> =
            (0..10_000).map(|_| new_run_id("pool", now)).collect();
        assert_eq!(ids.len(), 10_000, "two runs would both be \"ours\"");
        let id = new_run_id("pool", now);
        let random = id
            .strip_prefix(&format!("pool-{}-", now.format("%Y%m%dT%H%M%SZ")))
            .expect("the NodePool and the start first");
        let uuid = uuid::Uuid::parse_str(random).expect("a UUID");
        assert_eq!(uuid.get_version_num(), 4);
    }
}
