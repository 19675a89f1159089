//! Slack incoming webhooks: the URL (a secret), the messages (`messages`:
//! Block Kit with a plain `text` fallback) and the policy for Slack's answers.
//! Pure: the NotifierActor does the sending.

mod messages;
mod rotation;

use std::time::Duration;

use serde_json::Value;

pub use messages::{
    payload, Notice, RotationNotice, MAX_BLOCKS, MAX_HEADER_CHARS, MAX_SECTION_CHARS,
};
pub use rotation::{opening, Progress};

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
#[path = "tests.rs"]
mod tests;
