//! A fake Slack incoming webhook on 127.0.0.1: answers `ok` and keeps the
//! `text` of every message, in order, for a test to read.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::http::{serve, Request, Response, Server};

pub struct FakeSlack {
    /// Held: the server stops when this is dropped.
    pub server: Server,
    texts: Arc<Mutex<Vec<String>>>,
}

impl FakeSlack {
    pub async fn start() -> Self {
        let texts: Arc<Mutex<Vec<String>>> = Arc::default();
        let recorded = texts.clone();
        let server = serve(move |req: Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            recorded
                .lock()
                .unwrap()
                .push(body["text"].as_str().unwrap_or("").to_string());
            async { Response::new(200, "text/plain", "ok") }
        })
        .await;
        Self { server, texts }
    }

    /// The webhook URL to give `--slack-webhook-url`.
    pub fn url(&self) -> String {
        format!("{}/services/T0/B0/s3cret", self.server.url())
    }

    /// Every message's `text` so far, in order.
    pub fn texts(&self) -> Vec<String> {
        self.texts.lock().unwrap().clone()
    }

    /// The messages containing `needle`.
    pub fn containing(&self, needle: &str) -> Vec<String> {
        self.texts()
            .into_iter()
            .filter(|t| t.contains(needle))
            .collect()
    }
}

impl FakeSlack {
    /// The first message containing `needle`, waiting at most `timeout` (None: none came).
    pub async fn first_containing(
        &self,
        needle: &str,
        timeout: std::time::Duration,
    ) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(t) = self.containing(needle).into_iter().next() {
                return Some(t);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

impl FakeSlack {
    /// The webhook URL with `host` for 127.0.0.1 (`localhost`: name
    /// resolution inside an image).
    pub fn url_at(&self, host: &str) -> String {
        format!(
            "http://{host}:{}/services/T0/B0/s3cret",
            self.server.addr.port()
        )
    }
}
