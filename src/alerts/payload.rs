//! The Alertmanager webhook body, version 4 (alertmanager `notify/webhook`).
//! Unknown fields are accepted: Alertmanager keeps adding some
//! (`truncatedAlerts`, `notification_reason`, `routeLabels`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub version: String,
    #[serde(rename = "groupKey", default)]
    pub group_key: String,
    /// Alerts Alertmanager left out (`max_alerts`); counted, never guessed.
    #[serde(rename = "truncatedAlerts", default)]
    pub truncated_alerts: u64,
    pub status: Status,
    #[serde(default)]
    pub receiver: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Alert {
    pub status: Status,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: DateTime<Utc>,
    /// Alertmanager sends an empty one from some senders; `key()` then uses the labels.
    #[serde(default)]
    pub fingerprint: String,
}

impl Alert {
    pub fn name(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("")
    }

    /// What makes two deliveries the same alert: fingerprint and startsAt.
    pub fn key(&self) -> (String, DateTime<Utc>) {
        let fingerprint = if self.fingerprint.is_empty() {
            self.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        } else {
            self.fingerprint.clone()
        };
        (fingerprint, self.starts_at)
    }
}

/// A body that is not a version 4 webhook: the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

pub fn parse(body: &[u8]) -> Result<Message, PayloadError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let message: Message = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path == "?" || path.is_empty() {
            PayloadError(format!("invalid body: {inner}"))
        } else {
            PayloadError(format!("field {path}: {inner}"))
        }
    })?;
    if message.version != "4" {
        return Err(PayloadError(format!(
            "field version: {:?} is not supported (Alertmanager webhook payload version \"4\")",
            message.version
        )));
    }
    for (i, alert) in message.alerts.iter().enumerate() {
        if alert.name().is_empty() {
            return Err(PayloadError(format!(
                "field alerts[{i}].labels: no alertname"
            )));
        }
    }
    Ok(message)
}
