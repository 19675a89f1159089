//! A fake Slack incoming webhook answering from a script, as Slack documents
//! its answers (200 ok, 4xx refusals, 429 with Retry-After, 5xx, a hang): for
//! the notifier's delivery tests (`notify.rs`, `notify_drains.rs`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{serve, Request, Response, Server};

/// A fake Slack answering from a script (the last answer repeats); it records
/// each request's arrival and JSON body.
pub struct ScriptedSlack {
    pub server: Server,
    pub seen: Arc<Mutex<Vec<(Instant, Value)>>>,
}

#[derive(Clone)]
pub enum Answer {
    Status(u16, &'static str),
    TooMany { retry_after: &'static str },
    Hang(Duration),
}

pub async fn scripted_slack(script: Vec<Answer>) -> ScriptedSlack {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let server = serve(move |req: Request| {
        let seen = recorded.clone();
        let script = script.clone();
        async move {
            let index = {
                let mut s = seen.lock().unwrap();
                s.push((
                    Instant::now(),
                    serde_json::from_slice(&req.body).unwrap_or(Value::Null),
                ));
                s.len() - 1
            };
            match script.get(index).or(script.last()).cloned().unwrap() {
                Answer::Status(code, body) => Response::new(code, "text/plain", body),
                Answer::TooMany { retry_after } => Response::new(
                    429,
                    "application/json",
                    r#"{"ok":false,"error":"rate_limited"}"#,
                )
                .with_header("Retry-After", retry_after),
                Answer::Hang(d) => {
                    tokio::time::sleep(d).await;
                    Response::new(200, "text/plain", "ok")
                }
            }
        }
    })
    .await;
    ScriptedSlack { server, seen }
}
