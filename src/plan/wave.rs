//! Where the wave is sized: the seed's formula, then every cap, each with the
//! reason it applied. Pure: plain numbers in, a `WaveSize` out.
//!
//! ```text
//! maxAllocateRate = max(memoryAllocateRate, cpuAllocateRate)   # whole percents
//! drainRate       = (targetAllocateRate - maxAllocateRate) / 100
//! drainNodeCount  = floor(lenNodes * drainRate), never below 0
//! ```

use serde::Serialize;

/// Whole-percent allocate rate, rounded half-up as the seed logs it (27.49 → 27, 70.83 → 71).
pub fn whole_percent(rate: f64) -> u32 {
    if rate <= 0.0 {
        0
    } else {
        (rate + 0.5).floor() as u32
    }
}

/// `drainRate` as the seed logs it: may be negative when the NodePool is fuller than the target.
pub fn drain_rate(target_allocate_rate: u32, max_allocate_rate: u32) -> f64 {
    (f64::from(target_allocate_rate) - f64::from(max_allocate_rate)) / 100.0
}

/// `floor(lenNodes * drainRate)`, never below 0. Integer arithmetic, so
/// 10 nodes at 89 % with target 99 is exactly 1, not 0.999….
pub fn drain_node_count(
    len_nodes: usize,
    target_allocate_rate: u32,
    max_allocate_rate: u32,
) -> usize {
    if max_allocate_rate >= target_allocate_rate {
        return 0;
    }
    len_nodes * (target_allocate_rate - max_allocate_rate) as usize / 100
}

/// Why the wave is smaller than the formula asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "cap", rename_all = "kebab-case")]
pub enum WaveCap {
    /// `--max-nodes`.
    MaxNodes { max_nodes: usize },
    /// The NodePool's disruption budgets that apply now, after the nodes they already count.
    DisruptionBudget { allowed: usize, detail: String },
    /// Nodes node-drain is already draining count against the wave.
    AlreadyDraining { draining: usize },
}

impl std::fmt::Display for WaveCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaveCap::MaxNodes { max_nodes } => write!(f, "--max-nodes {max_nodes}"),
            WaveCap::DisruptionBudget { allowed, detail } => {
                write!(f, "NodePool disruption budget allows {allowed} ({detail})")
            }
            WaveCap::AlreadyDraining { draining } => {
                write!(
                    f,
                    "{draining} node(s) already being drained count against the wave"
                )
            }
        }
    }
}

/// What limits the wave besides the formula.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaveLimits {
    pub max_nodes: Option<usize>,
    /// Disruptions the NodePool's budgets allow now (already net of deleting/NotReady nodes).
    pub budget_allowed: Option<(usize, String)>,
    /// Nodes of this NodePool node-drain is draining right now.
    pub already_draining: usize,
}

/// The wave size and how it was reached.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WaveSize {
    pub len_nodes: usize,
    pub target_allocate_rate: u32,
    pub max_allocate_rate: u32,
    pub drain_rate: f64,
    /// What the seed formula alone gives.
    pub drain_node_count: usize,
    /// After every cap.
    pub wave_size: usize,
    /// Each cap that made the wave smaller, in the order applied.
    pub limited_by: Vec<WaveCap>,
}

/// Sizes the wave: the formula, then `--max-nodes`, the budget, and nodes already draining.
pub fn size_wave(
    len_nodes: usize,
    target: u32,
    max_allocate_rate: u32,
    limits: &WaveLimits,
) -> WaveSize {
    let formula = drain_node_count(len_nodes, target, max_allocate_rate);
    let mut size = formula;
    let mut limited_by = Vec::new();
    if let Some(max_nodes) = limits.max_nodes {
        if max_nodes < size {
            size = max_nodes;
            limited_by.push(WaveCap::MaxNodes { max_nodes });
        }
    }
    // The budget counts every node being disrupted, ours included; nodes we are
    // already draining are in that count only once they are deleting, so take
    // them off separately and never below zero.
    if let Some((allowed, detail)) = &limits.budget_allowed {
        if *allowed < size {
            size = *allowed;
            limited_by.push(WaveCap::DisruptionBudget {
                allowed: *allowed,
                detail: detail.clone(),
            });
        }
    }
    if limits.already_draining > 0 && size > 0 {
        let room = size.saturating_sub(limits.already_draining);
        if room < size {
            size = room;
            limited_by.push(WaveCap::AlreadyDraining {
                draining: limits.already_draining,
            });
        }
    }
    WaveSize {
        len_nodes,
        target_allocate_rate: target,
        max_allocate_rate,
        drain_rate: drain_rate(target, max_allocate_rate),
        drain_node_count: formula,
        wave_size: size,
        limited_by,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_example_eight_nodes_at_63_percent_drains_two() {
        assert_eq!(drain_rate(99, 63), 0.36);
        assert_eq!(drain_node_count(8, 99, 63), 2);
        let wave = size_wave(8, 99, 63, &WaveLimits::default());
        assert_eq!(wave.wave_size, 2);
        assert!(wave.limited_by.is_empty());
    }

    #[test]
    fn formula_table() {
        // (nodes, target, max rate, expected)
        let cases = [
            (8, 99, 63, 2),
            (8, 99, 99, 0),
            (8, 99, 100, 0),
            (8, 99, 150, 0),
            (10, 99, 89, 1), // exactly 1.0: no float rounding down to 0
            (100, 99, 0, 99),
            (0, 99, 10, 0),
            (3, 99, 70, 0), // 0.87 → 0
            (20, 80, 50, 6),
            (1, 99, 0, 0), // 0.99 → 0
        ];
        for (nodes, target, rate, want) in cases {
            assert_eq!(
                drain_node_count(nodes, target, rate),
                want,
                "{nodes} nodes, target {target}, rate {rate}"
            );
        }
    }

    #[test]
    fn whole_percent_rounds_half_up_as_the_seed_logs() {
        assert_eq!(whole_percent(91.0 / 331.0 * 100.0), 27);
        assert_eq!(whole_percent(34.0 / 48.0 * 100.0), 71);
        assert_eq!(whole_percent(62.5), 63);
        assert_eq!(whole_percent(62.49), 62);
        assert_eq!(whole_percent(0.0), 0);
        assert_eq!(whole_percent(-3.0), 0);
        assert_eq!(whole_percent(120.2), 120);
    }

    #[test]
    fn caps_apply_in_order_with_reasons() {
        let limits = WaveLimits {
            max_nodes: Some(1),
            ..Default::default()
        };
        let wave = size_wave(8, 99, 63, &limits);
        assert_eq!(wave.drain_node_count, 2);
        assert_eq!(wave.wave_size, 1);
        assert_eq!(wave.limited_by, vec![WaveCap::MaxNodes { max_nodes: 1 }]);

        let limits = WaveLimits {
            budget_allowed: Some((0, "nodes: 0".into())),
            ..Default::default()
        };
        let wave = size_wave(8, 99, 63, &limits);
        assert_eq!(wave.wave_size, 0);
        assert!(matches!(
            wave.limited_by[0],
            WaveCap::DisruptionBudget { allowed: 0, .. }
        ));

        let limits = WaveLimits {
            already_draining: 1,
            ..Default::default()
        };
        assert_eq!(size_wave(8, 99, 63, &limits).wave_size, 1);
        let limits = WaveLimits {
            already_draining: 5,
            ..Default::default()
        };
        assert_eq!(size_wave(8, 99, 63, &limits).wave_size, 0);

        // A cap larger than the formula is not a limit and is not reported.
        let limits = WaveLimits {
            max_nodes: Some(10),
            budget_allowed: Some((3, "10%".into())),
            already_draining: 0,
        };
        let wave = size_wave(8, 99, 63, &limits);
        assert_eq!(wave.wave_size, 2);
        assert!(wave.limited_by.is_empty());
    }
}
