//! Progress bars for `drain` on a terminal: one bar per node (pods removed of
//! pods planned, and the phase), fed from the shared progress map. Off a
//! terminal there are no bars, only the log lines.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::drain::progress::Progress;
use crate::drain::DrainOutcome;

pub struct Bars {
    bars: Vec<(String, ProgressBar)>,
}

impl Bars {
    /// Bars for one wave of a rotation: a heading line, then a bar per node.
    pub fn start_wave(number: usize, nodes: &[String]) -> Option<Self> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let heading = crate::telemetry::progress_output().add(ProgressBar::new_spinner());
        heading.finish_with_message(format!("wave {number}: {} node(s)", nodes.len()));
        Self::start(nodes)
    }

    /// Bars for `nodes` when standard error is a terminal; None otherwise.
    pub fn start(nodes: &[String]) -> Option<Self> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let multi = crate::telemetry::progress_output();
        let style = ProgressStyle::with_template("{prefix:>32} [{bar:30}] {pos}/{len} pods  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bars = nodes
            .iter()
            .map(|node| {
                let bar = multi.add(ProgressBar::new(0));
                bar.set_style(style.clone());
                bar.set_prefix(node.clone());
                bar.set_message("starting");
                bar.enable_steady_tick(Duration::from_millis(250));
                (node.clone(), bar)
            })
            .collect();
        Some(Self { bars })
    }

    /// Copies the progress map into the bars.
    pub fn update(&self, progress: &Progress) {
        for (node, bar) in &self.bars {
            let Some(p) = progress.get(node) else {
                continue;
            };
            let (removed, planned) = p.removed_of_planned();
            bar.set_length(planned as u64);
            bar.set_position(removed as u64);
            match &p.outcome {
                Some(DrainOutcome::Drained { retired, .. }) => {
                    bar.finish_with_message(format!("drained; {retired}"))
                }
                Some(DrainOutcome::RetiredElsewhere) => {
                    bar.finish_with_message("deleted by someone else".to_string())
                }
                Some(DrainOutcome::Failed { reason, .. }) => {
                    bar.abandon_with_message(format!("NOT drained: {reason}"))
                }
                None => {
                    let pdbs = if p.pdb_refusals.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (PDB {})",
                            p.pdb_refusals
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    bar.set_message(format!("{}{pdbs}", p.step_name()));
                }
            }
        }
    }

    pub fn finish(self, progress: &Progress) {
        self.update(progress);
        for (_, bar) in self.bars {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
        crate::telemetry::clear_progress_output();
    }
}
