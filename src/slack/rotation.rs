//! What a rotation tells Slack: its start (nodes, waves expected, ETA), each
//! wave, a wait for a maintenance window and its end, and the summary.

use std::time::Duration;

use serde_json::Value;

use super::messages::{cluster_label, header, list_sections, section, MAX_BLOCKS};

/// What a rotation tells Slack (`drain --rotate`).
#[derive(Debug, Clone, PartialEq)]
pub enum RotationNotice {
    Started {
        cluster: String,
        nodepool: String,
        run_id: String,
        /// The nodes to replace.
        nodes: Vec<String>,
        /// None: no wave fits the NodePool now.
        waves_expected: Option<usize>,
        eta: Option<Duration>,
        /// Continuing a rotation recorded on the NodePool.
        resumed: bool,
    },
    Wave {
        cluster: String,
        nodepool: String,
        number: usize,
        nodes: Vec<String>,
        /// How its capacity was found (reserved first, or a plain wave and why).
        capacity: String,
        /// Nodes skipped for good since the last wave, with why.
        skipped: Vec<String>,
    },
    Finished {
        cluster: String,
        nodepool: String,
        run_id: String,
        duration: Duration,
        waves: usize,
        replaced: Vec<String>,
        skipped: Vec<String>,
        capacity_fallback: Option<String>,
        /// False: stopped early; the progress stays on the NodePool.
        finished: bool,
    },
    /// Every maintenance window is closed: no wave starts until one opens.
    /// Said once a wait (the daemon's rotations; the CLI has no windows).
    WindowHeld {
        cluster: String,
        nodepool: String,
        run_id: String,
        /// The next opening, on its window's zone (None: no opening ahead).
        opens: Option<jiff::Zoned>,
        progress: Progress,
    },
    /// A window opened after a `WindowHeld`: the next wave starts.
    WindowOpened {
        cluster: String,
        nodepool: String,
        run_id: String,
        progress: Progress,
    },
}

/// Where a rotation stands (from its record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub waves_done: usize,
    pub replaced: usize,
    pub skipped: usize,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.waves_done == 0 {
            return f.write_str("no wave done yet");
        }
        write!(
            f,
            "{} wave(s) done: {} replaced, {} skipped",
            self.waves_done, self.replaced, self.skipped
        )
    }
}

/// When a window opens: on its zone's wall clock, then in UTC
/// (`Sun 2026-11-29 22:00 KST (Asia/Seoul), 13:00 UTC`).
pub fn opening(opens: Option<&jiff::Zoned>) -> String {
    use jiff::fmt::strtime::format;
    let Some(z) = opens else {
        return "never: no window opens ahead".into();
    };
    // Formatted fallibly: a Display error would panic the notifier's handler.
    match (
        format("%a %Y-%m-%d %H:%M %Z (%Q)", z),
        format("%H:%M UTC", z.timestamp()),
    ) {
        (Ok(local), Ok(utc)) => format!("{local}, {utc}"),
        _ => z.to_string(),
    }
}

impl RotationNotice {
    /// The message's `text` and blocks.
    pub(super) fn blocks(&self) -> (String, Vec<Value>) {
        match self {
            RotationNotice::Started {
                cluster,
                nodepool,
                run_id,
                nodes,
                waves_expected,
                eta,
                resumed,
            } => {
                let verb = if *resumed { "resumed" } else { "started" };
                let title = format!(
                    "{}Rotation of NodePool {nodepool} {verb}: {} node(s) to replace",
                    cluster_label(cluster),
                    nodes.len()
                );
                let plan = match (waves_expected, eta) {
                    (Some(w), Some(eta)) => format!(
                        "{w} wave(s) expected, ETA about {}",
                        crate::plan::rotation::human_duration(*eta)
                    ),
                    _ => "no wave fits the NodePool right now (budget or allocate rate); waiting"
                        .into(),
                };
                let mut blocks = vec![
                    header(&title),
                    section(&format!("Rotation `{run_id}`: {plan}")),
                ];
                blocks.extend(list_sections(nodes, MAX_BLOCKS - blocks.len()));
                (format!("{title}; {plan}"), blocks)
            }
            RotationNotice::Wave {
                cluster,
                nodepool,
                number,
                nodes,
                capacity,
                skipped,
            } => {
                let title = format!(
                    "{}Rotation of {nodepool}: wave {number}, {} node(s); {capacity}",
                    cluster_label(cluster),
                    nodes.len()
                );
                let mut blocks = vec![section(&format!("*{title}*"))];
                blocks.extend(list_sections(nodes, MAX_BLOCKS / 2));
                if !skipped.is_empty() {
                    blocks.push(section("*Skipped*"));
                    blocks.extend(list_sections(skipped, MAX_BLOCKS - blocks.len()));
                }
                (title, blocks)
            }
            RotationNotice::Finished {
                cluster,
                nodepool,
                run_id,
                duration,
                waves,
                replaced,
                skipped,
                capacity_fallback,
                finished,
            } => {
                let state = if *finished { "finished" } else { "stopped" };
                let title = format!(
                "{}Rotation of {nodepool} {state}: {} replaced, {} skipped, {waves} wave(s) in {}",
                cluster_label(cluster),
                replaced.len(),
                skipped.len(),
                crate::plan::rotation::human_duration(*duration)
            );
                let mut blocks = vec![header(&title), section(&format!("Rotation `{run_id}`"))];
                if let Some(reason) = capacity_fallback {
                    blocks.push(section(&format!(
                        "Capacity first fell back to plain waves: {reason}"
                    )));
                }
                if !*finished {
                    blocks.push(section(&format!(
                        "Unless it was cancelled, its progress is kept on the NodePool \
                         (annotation `node-drain.io/rotation`): `node-drain admin rotate {nodepool}` \
                         (daemon) or `node-drain drain --rotate` (CLI) continues it."
                    )));
                }
                if !skipped.is_empty() {
                    blocks.push(section("*Skipped*"));
                    blocks.extend(list_sections(skipped, (MAX_BLOCKS - blocks.len()) / 2));
                }
                if !replaced.is_empty() {
                    blocks.push(section("*Replaced*"));
                    blocks.extend(list_sections(replaced, MAX_BLOCKS - blocks.len()));
                }
                (title, blocks)
            }
            RotationNotice::WindowHeld {
                cluster,
                nodepool,
                run_id,
                opens,
                progress,
            } => {
                let title = format!(
                "{}Rotation of {nodepool} held: every maintenance window is closed; the next opens {}",
                cluster_label(cluster),
                opening(opens.as_ref())
            );
                let text = format!("{title}. Rotation `{run_id}`: {progress}");
                (text.clone(), vec![section(&text)])
            }
            RotationNotice::WindowOpened {
                cluster,
                nodepool,
                run_id,
                progress,
            } => {
                let text = format!(
                "{}Rotation of {nodepool}: the maintenance window is open; the next wave starts. Rotation `{run_id}`: {progress}",
                cluster_label(cluster)
            );
                (text.clone(), vec![section(&text)])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seoul(at: &str) -> jiff::Zoned {
        at.parse::<jiff::Timestamp>()
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::get("Asia/Seoul").unwrap())
    }

    #[test]
    fn a_held_rotation_says_where_it_stands_and_when_the_window_opens_on_its_clock() {
        let held = RotationNotice::WindowHeld {
            cluster: "devel".into(),
            nodepool: "worker".into(),
            run_id: "rot-1".into(),
            opens: Some(seoul("2026-11-29T13:00:00Z")),
            progress: Progress {
                waves_done: 2,
                replaced: 3,
                skipped: 1,
            },
        };
        assert_eq!(
            held.blocks().0,
            "[devel] Rotation of worker held: every maintenance window is closed; the next \
             opens Sun 2026-11-29 22:00 KST (Asia/Seoul), 13:00 UTC. Rotation `rot-1`: 2 \
             wave(s) done: 3 replaced, 1 skipped"
        );
        assert_eq!(opening(None), "never: no window opens ahead");
        let opened = RotationNotice::WindowOpened {
            cluster: String::new(),
            nodepool: "worker".into(),
            run_id: "rot-1".into(),
            progress: Progress {
                waves_done: 0,
                replaced: 0,
                skipped: 0,
            },
        };
        assert_eq!(
            opened.blocks().0,
            "Rotation of worker: the maintenance window is open; the next wave starts. \
             Rotation `rot-1`: no wave done yet"
        );
    }
}
