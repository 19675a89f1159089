//! Slack incoming-webhook messages (Block Kit with a plain `text` fallback) and
//! the policy for Slack's answers. Pure: the NotifierActor does the sending.
//!
//! Limits kept (Slack rejects more with 400 invalid_blocks/invalid_payload):
//! 50 blocks per message, 3,000 characters per section text, 150 per header.
//! A long list is cut with "…and N more".

use std::time::Duration;

use serde_json::{json, Value};

pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION_CHARS: usize = 3000;
pub const MAX_HEADER_CHARS: usize = 150;

/// The webhook URL: a credential (its path is the token). It is never printed —
/// not by Debug, not by Display, not in an error.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    /// None for an empty value (notifications off); an error names what is wrong
    /// without repeating the value.
    pub fn parse(value: &str) -> Result<Option<Self>, String> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(None);
        }
        let url = url::Url::parse(value)
            .map_err(|e| format!("--slack-webhook-url is not a URL ({e})"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err("--slack-webhook-url must be an http(s) URL".into());
        }
        Ok(Some(Self(url)))
    }

    /// The URL itself, only for the request.
    pub fn expose(&self) -> &url::Url {
        &self.0
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookUrl(<redacted>)")
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted Slack webhook>")
    }
}

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
}

fn cluster_label(cluster: &str) -> String {
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

fn header(text: &str) -> Value {
    json!({"type": "header", "text": {"type": "plain_text", "text": truncate(text, MAX_HEADER_CHARS)}})
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_CHARS)}})
}

/// A bullet list as sections, at most `room` blocks, each within the character
/// limit; what does not fit is counted in a last "…and N more".
fn list_sections(items: &[String], room: usize) -> Vec<Value> {
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
    };
    blocks.truncate(MAX_BLOCKS);
    json!({"text": truncate(&text, MAX_SECTION_CHARS), "blocks": blocks})
}

/// What to do with Slack's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackVerdict {
    Delivered,
    /// 429 (after Retry-After) or 5xx / no answer (backoff): try again.
    Retry {
        after: Duration,
    },
    /// 4xx other than 429: Slack's error code; never retried.
    Refused {
        status: u16,
        error: String,
    },
}

/// Maps Slack's answer. `attempt` counts from 0 (for the 5xx backoff).
pub fn slack_verdict(
    status: u16,
    body: &str,
    retry_after: Option<&str>,
    attempt: u32,
) -> SlackVerdict {
    match status {
        200..=299 => SlackVerdict::Delivered,
        429 => {
            let seconds = retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 300);
            SlackVerdict::Retry {
                after: Duration::from_secs(seconds),
            }
        }
        500..=599 => SlackVerdict::Retry {
            after: Duration::from_millis(500 << attempt.min(5)),
        },
        _ => SlackVerdict::Refused {
            status,
            error: error_code(body),
        },
    }
}

/// Slack answers errors as a plain code ("channel_not_found") or JSON with "error".
fn error_code(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        if let Some(e) = v["error"].as_str() {
            return e.to_string();
        }
    }
    let line = body.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        "(empty answer)".into()
    } else {
        line.chars().take(100).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(slack_verdict(200, "ok", None, 0), SlackVerdict::Delivered);
        assert_eq!(
            slack_verdict(429, "", Some("3"), 0),
            SlackVerdict::Retry {
                after: Duration::from_secs(3)
            }
        );
        assert_eq!(
            slack_verdict(429, "", None, 0),
            SlackVerdict::Retry {
                after: Duration::from_secs(1)
            }
        );
        assert_eq!(
            slack_verdict(500, "rollup_error", None, 0),
            SlackVerdict::Retry {
                after: Duration::from_millis(500)
            }
        );
        assert_eq!(
            slack_verdict(503, "", None, 2),
            SlackVerdict::Retry {
                after: Duration::from_millis(2000)
            }
        );
        for (status, body) in [
            (400, "invalid_payload"),
            (403, "action_prohibited"),
            (404, "channel_not_found"),
            (410, "channel_is_archived"),
        ] {
            assert_eq!(
                slack_verdict(status, body, None, 0),
                SlackVerdict::Refused {
                    status,
                    error: body.into()
                }
            );
        }
        assert_eq!(
            slack_verdict(400, r#"{"ok":false,"error":"invalid_blocks"}"#, None, 0),
            SlackVerdict::Refused {
                status: 400,
                error: "invalid_blocks".into()
            }
        );
    }

    #[test]
    fn the_webhook_url_never_prints() {
        let url = WebhookUrl::parse("https://hooks.example/services/T000/B000/SECRETTOKEN")
            .unwrap()
            .unwrap();
        assert!(!format!("{url:?} {url}").contains("SECRETTOKEN"));
        assert_eq!(WebhookUrl::parse("").unwrap(), None);
        let err = WebhookUrl::parse("not a url SECRETTOKEN").unwrap_err();
        assert!(!err.contains("SECRETTOKEN"), "{err}");
    }

    #[test]
    fn long_lists_stay_within_slack_limits() {
        let blockers: Vec<String> = (0..2000)
            .map(|i| {
                format!(
                    "namespace-{i}/pod-with-a-rather-long-name-{i} (PodDisruptionBudget pdb-{i})"
                )
            })
            .collect();
        let p = payload(&Notice::NodeFailed {
            cluster: "c".into(),
            node: "n".into(),
            reason: "timeout".into(),
            blockers,
        });
        let blocks = p["blocks"].as_array().unwrap();
        assert!(blocks.len() <= MAX_BLOCKS);
        for b in blocks {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(
                    t.chars().count() <= MAX_SECTION_CHARS,
                    "section of {} chars",
                    t.chars().count()
                );
            }
        }
        let last = blocks.last().unwrap()["text"]["text"].as_str().unwrap();
        assert!(last.contains("…and ") && last.contains(" more"), "{last}");
        assert!(p["text"].as_str().unwrap().contains("n NOT drained"));

        let nodes: Vec<String> = (0..500).map(|i| format!("node-{i}")).collect();
        let finished = payload(&Notice::RunFinished {
            cluster: "c".into(),
            nodepool: "p".into(),
            run_id: "r".into(),
            duration: Duration::from_secs(5),
            pods_evicted: 1,
            pods_force_deleted: 0,
            retired: nodes.clone(),
            failed: nodes,
        });
        assert!(finished["blocks"].as_array().unwrap().len() <= MAX_BLOCKS);
        let header_text = payload(&Notice::RunStarted {
            cluster: "x".repeat(400),
            nodepool: "p".into(),
            nodes: vec![],
            run_id: "r".into(),
            trigger: "t".into(),
        });
        assert!(
            header_text["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count()
                <= MAX_HEADER_CHARS
        );
    }

    #[test]
    fn messages_carry_what_the_sre_needs() {
        let started = payload(&Notice::RunStarted {
            cluster: "devel_eks_cluster".into(),
            nodepool: "worker".into(),
            nodes: vec!["a".into(), "b".into()],
            run_id: "r1".into(),
            trigger: "alert NodeDiskPressure node=a".into(),
        });
        assert!(started
            .to_string()
            .contains("Triggered by: alert NodeDiskPressure node=a"));
        assert_eq!(
            started["text"],
            "[devel_eks_cluster] node-drain started: 2 node(s) of NodePool worker"
        );
        let rates = payload(&Notice::AllocateRates {
            cluster: "".into(),
            nodepool: "worker".into(),
            memory_percent: 22,
            cpu_percent: 63,
            max_percent: 63,
            len_nodes: 8,
            drain_rate: 0.36,
            wave_size: 2,
            limited_by: vec![],
        });
        assert!(rates["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("*CPU* 63 %"));
        assert!(rates["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("8 nodes × drainRate 0.36 → 2 node(s)"));
    }
}
