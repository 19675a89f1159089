//! The messages node-drain sends to Slack: Block Kit with a plain `text`
//! fallback, within Slack's limits.
//!
//! Limits kept (Slack rejects more with 400 invalid_blocks/invalid_payload):
//! 50 blocks per message, 3,000 characters per section text, 150 per header.
//! A long list is cut with "…and N more".

use std::time::Duration;

use serde_json::{json, Value};

pub use super::rotation::RotationNotice;

pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION_CHARS: usize = 3000;
pub const MAX_HEADER_CHARS: usize = 150;

/// What node-drain tells Slack.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    RunStarted {
        cluster: String,
        nodepool: String,
        nodes: Vec<String>,
        run_id: String,
        /// What asked: the CLI, an alert (name and labels), the admin socket, a takeover.
        trigger: String,
    },
    AllocateRates {
        cluster: String,
        nodepool: String,
        memory_percent: u32,
        cpu_percent: u32,
        max_percent: u32,
        len_nodes: usize,
        drain_rate: f64,
        wave_size: usize,
        limited_by: Vec<String>,
    },
    NodeDrained {
        cluster: String,
        node: String,
        pods_evicted: usize,
        pods_force_deleted: usize,
        retired: String,
    },
    NodeFailed {
        cluster: String,
        node: String,
        reason: String,
        blockers: Vec<String>,
    },
    /// A node an alert asked to drain holds blocking pods: it was not
    /// cordoned. Said once per set of blockers.
    NodeBlocked {
        cluster: String,
        node: String,
        trigger: String,
        blockers: Vec<String>,
    },
    RunFinished {
        cluster: String,
        nodepool: String,
        run_id: String,
        duration: Duration,
        pods_evicted: usize,
        pods_force_deleted: usize,
        retired: Vec<String>,
        failed: Vec<String>,
    },
    /// A NodePool rotation: started, each wave, finished.
    Rotation(RotationNotice),
}

pub(super) fn cluster_label(cluster: &str) -> String {
    if cluster.is_empty() {
        String::new()
    } else {
        format!("[{cluster}] ")
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

pub(super) fn header(text: &str) -> Value {
    json!({"type": "header", "text": {"type": "plain_text", "text": truncate(text, MAX_HEADER_CHARS)}})
}

pub(super) fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_CHARS)}})
}

/// A bullet list as sections, at most `room` blocks, each within the character
/// limit; what does not fit is counted in a last "…and N more".
pub(super) fn list_sections(items: &[String], room: usize) -> Vec<Value> {
    let mut blocks = Vec::new();
    let mut current = String::new();
    let mut shown = 0;
    for item in items {
        let line = format!("• {}\n", truncate(item, 500));
        if current.len() + line.len() > MAX_SECTION_CHARS - 40 {
            if blocks.len() + 2 >= room {
                break;
            }
            blocks.push(section(&current));
            current.clear();
        }
        current.push_str(&line);
        shown += 1;
    }
    let rest = items.len() - shown;
    if rest > 0 {
        current.push_str(&format!("…and {rest} more"));
    }
    if !current.is_empty() {
        blocks.push(section(&current));
    }
    blocks
}

/// The webhook payload: `text` (the notification fallback) and `blocks`.
pub fn payload(notice: &Notice) -> Value {
    let (text, mut blocks) = match notice {
        Notice::RunStarted {
            cluster,
            nodepool,
            nodes,
            run_id,
            trigger,
        } => {
            let title = format!(
                "{}node-drain started: {} node(s) of NodePool {nodepool}",
                cluster_label(cluster),
                nodes.len()
            );
            let mut blocks = vec![
                header(&title),
                section(&format!(
                    "Run `{run_id}` drains these nodes of *{nodepool}*:"
                )),
                section(&format!("Triggered by: {trigger}")),
            ];
            blocks.extend(list_sections(nodes, MAX_BLOCKS - blocks.len()));
            (title, blocks)
        }
        Notice::AllocateRates {
            cluster,
            nodepool,
            memory_percent,
            cpu_percent,
            max_percent,
            len_nodes,
            drain_rate,
            wave_size,
            limited_by,
        } => {
            let title = format!(
                "{}NodePool {nodepool}: allocate rate {max_percent} %, wave of {wave_size} node(s)",
                cluster_label(cluster)
            );
            let mut body = format!(
                "*Memory* {memory_percent} %  ·  *CPU* {cpu_percent} %  ·  *max* {max_percent} %\n{len_nodes} nodes × drainRate {drain_rate:.2} → {wave_size} node(s) in this wave"
            );
            for cap in limited_by {
                body.push_str(&format!("\nlimited by {cap}"));
            }
            (title.clone(), vec![header(&title), section(&body)])
        }
        Notice::NodeDrained {
            cluster,
            node,
            pods_evicted,
            pods_force_deleted,
            retired,
        } => {
            let title = format!("{}✅ {node} drained", cluster_label(cluster));
            let body = format!(
                "{pods_evicted} pod(s) evicted, {pods_force_deleted} force-deleted; {retired}"
            );
            (
                format!("{title}: {body}"),
                vec![section(&format!("*{title}*\n{body}"))],
            )
        }
        Notice::NodeFailed {
            cluster,
            node,
            reason,
            blockers,
        } => {
            let title = format!("{}❌ {node} NOT drained: {reason}", cluster_label(cluster));
            let mut blocks = vec![section(&format!(
                "*{title}*\nThe node was restored. Blocking pods and PodDisruptionBudgets:"
            ))];
            blocks.extend(list_sections(blockers, MAX_BLOCKS - blocks.len()));
            (title, blocks)
        }
        Notice::NodeBlocked {
            cluster,
            node,
            trigger,
            blockers,
        } => {
            let title = format!(
                "{}⛔ {node} NOT drained: blocked by {}",
                cluster_label(cluster),
                blockers.join(", ")
            );
            let mut blocks = vec![section(&format!(
                "*{}⛔ {node} NOT drained: blocking pods*\nAsked by: {trigger}. Nothing was changed (the node was not cordoned); the alert's next send drains it once these are gone:",
                cluster_label(cluster)
            ))];
            blocks.extend(list_sections(blockers, MAX_BLOCKS - blocks.len()));
            (title, blocks)
        }
        Notice::RunFinished {
            cluster,
            nodepool,
            run_id,
            duration,
            pods_evicted,
            pods_force_deleted,
            retired,
            failed,
        } => {
            let title = format!(
                "{}node-drain finished on {nodepool}: {} drained, {} failed in {:.0}s",
                cluster_label(cluster),
                retired.len(),
                failed.len(),
                duration.as_secs_f64()
            );
            let mut blocks = vec![
                header(&title),
                section(&format!("Run `{run_id}`: {pods_evicted} pod(s) evicted, {pods_force_deleted} force-deleted")),
            ];
            if !retired.is_empty() {
                blocks.push(section("*Retired*"));
                blocks.extend(list_sections(retired, (MAX_BLOCKS - blocks.len()) / 2));
            }
            if !failed.is_empty() {
                blocks.push(section("*Not drained*"));
                blocks.extend(list_sections(failed, MAX_BLOCKS - blocks.len()));
            }
            (title, blocks)
        }
        Notice::Rotation(notice) => notice.blocks(),
    };
    blocks.truncate(MAX_BLOCKS);
    json!({"text": truncate(&text, MAX_SECTION_CHARS), "blocks": blocks})
}
