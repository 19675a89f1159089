//! The node node-drain itself runs on goes last in its wave (SPEC §2): its
//! drain may move node-drain, so it is started only once every other node of
//! the run has finished — not merely sorted last while all start at once.

/// The nodes a run starts at once, and the one it starts only when all of
/// those have finished (`own_node`, when it is one of several).
pub fn start_order(nodes: &[String], own_node: Option<&str>) -> (Vec<String>, Option<String>) {
    match own_node {
        Some(own) if nodes.len() > 1 && nodes.iter().any(|n| n == own) => (
            nodes.iter().filter(|n| *n != own).cloned().collect(),
            Some(own.to_string()),
        ),
        _ => (nodes.to_vec(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// (the run's nodes, the own node, started at once, started last)
    type Case = (
        &'static [&'static str],
        Option<&'static str>,
        &'static [&'static str],
        Option<&'static str>,
    );

    #[test]
    fn the_own_node_starts_after_the_others() {
        let cases: Vec<Case> = vec![
            (&["a", "b", "c"], None, &["a", "b", "c"], None),
            (&["a", "b", "c"], Some("x"), &["a", "b", "c"], None),
            (&["a", "b", "c"], Some("a"), &["b", "c"], Some("a")),
            (&["a", "b", "c"], Some("c"), &["a", "b"], Some("c")),
            (&["a"], Some("a"), &["a"], None),
        ];
        for (nodes, own, now, later) in cases {
            assert_eq!(
                start_order(&names(nodes), own),
                (names(now), later.map(str::to_string)),
                "{nodes:?} own {own:?}"
            );
        }
    }
}
