//! Prometheus / Mimir instant queries (`GET <address>/api/v1/query`), with the
//! `X-Scope-OrgID` tenant header. Every way an answer can be unusable is its own
//! error, so automatic drains fail closed and the operator knows what to check.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::telemetry::error_chain;

/// One instant-vector sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error("--prometheus-address {address:?} is not a URL: {reason}")]
    BadAddress { address: String, reason: String },
    #[error("Prometheus at {address} is unreachable ({reason}): check --prometheus-address and that the port-forward is alive")]
    Unreachable { address: String, reason: String },
    #[error("Prometheus at {address} answered 401 \"no org id\": Mimir needs a tenant, set --prometheus-org-id (PROMETHEUS_SCOPE_ORG_ID)")]
    NoOrgId { address: String },
    #[error("Prometheus at {address} answered HTTP {status} to {query:?}: {message}{hint}")]
    Http {
        address: String,
        status: u16,
        query: String,
        message: String,
        hint: &'static str,
    },
    #[error("Prometheus answer to {query:?} could not be read: {reason}")]
    Decode { query: String, reason: String },
    #[error("Prometheus query {query:?} returned no series: is Prometheus scraping Karpenter, and does the NodePool exist?")]
    Empty { query: String },
    #[error("Prometheus query {query:?} returned {value}, not a finite number")]
    NotFinite { query: String, value: String },
}

/// A client for one Prometheus or Mimir address. Cheap to clone.
#[derive(Clone)]
pub struct PrometheusClient {
    /// `<address>/api/v1/query`, built once.
    query_url: Url,
    /// The address as the operator gave it, for error messages.
    address: String,
    /// Sent as `X-Scope-OrgID`; None sends no header.
    org_id: Option<String>,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorSample {
    metric: std::collections::BTreeMap<String, String>,
    value: (f64, String),
}

impl PrometheusClient {
    pub fn new(address: &str, org_id: &str, timeout: Duration) -> Result<Self, PrometheusError> {
        let bad = |reason: String| PrometheusError::BadAddress {
            address: address.to_string(),
            reason,
        };
        let mut base = Url::parse(address).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad(format!(
                "scheme {:?} is not http or https",
                base.scheme()
            )));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let query_url = base.join("api/v1/query").map_err(|e| bad(e.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            query_url,
            address: address.trim_end_matches('/').to_string(),
            org_id: (!org_id.is_empty()).then(|| org_id.to_string()),
            http,
        })
    }

    /// Runs an instant query and returns its vector (an empty vector is returned as is).
    pub async fn query_vector(&self, query: &str) -> Result<Vec<Sample>, PrometheusError> {
        let mut request = self
            .http
            .get(self.query_url.clone())
            .query(&[("query", query)]);
        if let Some(org) = &self.org_id {
            request = request.header("X-Scope-OrgID", org);
        }
        let response = request
            .send()
            .await
            .map_err(|e| PrometheusError::Unreachable {
                address: self.address.clone(),
                reason: error_chain(&e),
            })?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| PrometheusError::Unreachable {
                address: self.address.clone(),
                reason: error_chain(&e),
            })?;
        if status.as_u16() == 401 && body.to_ascii_lowercase().contains("no org id") {
            return Err(PrometheusError::NoOrgId {
                address: self.address.clone(),
            });
        }
        let parsed: Option<ApiResponse> = serde_json::from_str(&body).ok();
        if !status.is_success() {
            let message = parsed
                .as_ref()
                .and_then(|p| {
                    p.error
                        .clone()
                        .map(|e| format!("{}: {e}", p.error_type.as_deref().unwrap_or("error")))
                })
                .unwrap_or_else(|| first_line(&body));
            let hint = match status.as_u16() {
                401 | 403 => " (check --prometheus-org-id and credentials)",
                404 => " (check --prometheus-address: Mimir serves the API under /prometheus)",
                _ => "",
            };
            return Err(PrometheusError::Http {
                address: self.address.clone(),
                status: status.as_u16(),
                query: query.into(),
                message,
                hint,
            });
        }
        let parsed = parsed.ok_or_else(|| PrometheusError::Decode {
            query: query.into(),
            reason: format!("not a Prometheus API answer: {}", first_line(&body)),
        })?;
        if parsed.status != "success" {
            return Err(PrometheusError::Http {
                address: self.address.clone(),
                status: status.as_u16(),
                query: query.into(),
                message: parsed
                    .error
                    .unwrap_or_else(|| format!("status {:?}", parsed.status)),
                hint: "",
            });
        }
        let data = parsed.data.ok_or_else(|| PrometheusError::Decode {
            query: query.into(),
            reason: "no data".into(),
        })?;
        if data.result_type != "vector" {
            return Err(PrometheusError::Decode {
                query: query.into(),
                reason: format!("result type {:?}, expected vector", data.result_type),
            });
        }
        let samples: Vec<VectorSample> =
            serde_json::from_value(data.result).map_err(|e| PrometheusError::Decode {
                query: query.into(),
                reason: e.to_string(),
            })?;
        samples
            .into_iter()
            .map(|s| {
                let value = parse_value(&s.value.1).ok_or_else(|| PrometheusError::Decode {
                    query: query.into(),
                    reason: format!("value {:?} is not a number", s.value.1),
                })?;
                Ok(Sample {
                    labels: s.metric,
                    value,
                })
            })
            .collect()
    }

    /// One finite number: the query must return at least one series; when it
    /// returns several (e.g. two Karpenter replicas scraped), the largest is used.
    pub async fn query_value(&self, query: &str) -> Result<f64, PrometheusError> {
        let samples = self.query_vector(query).await?;
        if samples.is_empty() {
            return Err(PrometheusError::Empty {
                query: query.into(),
            });
        }
        if let Some(bad) = samples.iter().find(|s| !s.value.is_finite()) {
            return Err(PrometheusError::NotFinite {
                query: query.into(),
                value: bad.value.to_string(),
            });
        }
        Ok(samples.iter().map(|s| s.value).fold(f64::MIN, f64::max))
    }
}

/// Prometheus encodes values as strings, with "NaN", "+Inf" and "-Inf".
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

fn first_line(body: &str) -> String {
    let line = body.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        "(empty body)".into()
    } else {
        line.chars().take(300).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_include_the_special_ones() {
        assert_eq!(parse_value("1.5"), Some(1.5));
        assert!(parse_value("NaN").unwrap().is_nan());
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_value("x"), None);
    }

    #[test]
    fn address_forms() {
        let c = PrometheusClient::new(
            "http://localhost:8080/prometheus",
            "",
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            c.query_url.as_str(),
            "http://localhost:8080/prometheus/api/v1/query"
        );
        let c =
            PrometheusClient::new("http://127.0.0.1:9090/", "org", Duration::from_secs(1)).unwrap();
        assert_eq!(c.query_url.as_str(), "http://127.0.0.1:9090/api/v1/query");
        assert!(PrometheusClient::new("localhost:9090", "", Duration::from_secs(1)).is_err());
        assert!(PrometheusClient::new("not a url", "", Duration::from_secs(1)).is_err());
    }
}
