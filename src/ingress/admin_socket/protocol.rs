//! The admin socket's line protocol: one JSON request per line, one JSON
//! answer per line: `{"cmd":"drain-node","node":"x","dry_run":false}` →
//! `{"ok":true,...}`, and `{"ok":false,"error":"..."}` for anything wrong.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The longest line read; a longer one is refused and the connection closed.
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    Status,
    Plan {
        #[serde(default)]
        nodepool: Option<String>,
    },
    DrainNode {
        node: String,
        #[serde(default)]
        dry_run: bool,
    },
    DrainNodepool {
        nodepool: String,
        #[serde(default)]
        dry_run: bool,
    },
    /// Rotate a whole NodePool (`dry_run`: the preflight).
    Rotate {
        nodepool: String,
        #[serde(default)]
        dry_run: bool,
    },
    /// Pause, resume or cancel the rotation of a NodePool.
    Rotation {
        nodepool: String,
        action: crate::rotation::daemon::RotationAction,
    },
    Pause,
    Resume,
    Cancel {
        #[serde(default)]
        run: Option<String>,
        #[serde(default)]
        node: Option<String>,
    },
}

impl Request {
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Plan { .. } => "plan",
            Request::DrainNode { .. } => "drain-node",
            Request::DrainNodepool { .. } => "drain-nodepool",
            Request::Rotate { .. } => "rotate",
            Request::Rotation { .. } => "rotation",
            Request::Pause => "pause",
            Request::Resume => "resume",
            Request::Cancel { .. } => "cancel",
        }
    }
}

pub fn parse(line: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(line).map_err(|_| "the request is not UTF-8".to_string())?;
    let value: Value =
        serde_json::from_str(text.trim()).map_err(|e| format!("bad request: {e}"))?;
    // serde does not refuse unknown fields beside the tag of a unit variant.
    let allowed: &[&str] = match value.get("cmd").and_then(Value::as_str) {
        Some("plan") => &["nodepool"],
        Some("drain-node") => &["node", "dry_run"],
        Some("drain-nodepool") => &["nodepool", "dry_run"],
        Some("cancel") => &["run", "node"],
        Some("rotate") => &["nodepool", "dry_run"],
        Some("rotation") => &["nodepool", "action"],
        _ => &[],
    };
    if let Some(object) = value.as_object() {
        if let Some(extra) = object
            .keys()
            .find(|k| *k != "cmd" && !allowed.contains(&k.as_str()))
        {
            return Err(format!("bad request: unknown field `{extra}`"));
        }
    }
    let request: Request =
        serde_json::from_value(value).map_err(|e| format!("bad request: {e}"))?;
    if let Request::Cancel { run, node } = &request {
        if run.is_some() == node.is_some() {
            return Err("cancel needs exactly one of \"run\" or \"node\"".into());
        }
    }
    Ok(request)
}

pub fn ok(mut value: Value) -> String {
    if !value.is_object() {
        value = json!({ "result": value });
    }
    value["ok"] = json!(true);
    value.to_string()
}

pub fn error(message: &str) -> String {
    json!({"ok": false, "error": message}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::daemon::RotationAction;
    use proptest::prelude::*;

    #[test]
    fn every_command_parses_and_garbage_is_named() {
        for (line, want) in [
            (r#"{"cmd":"status"}"#, Request::Status),
            (r#"{"cmd":"plan"}"#, Request::Plan { nodepool: None }),
            (
                r#"{"cmd":"drain-node","node":"a","dry_run":true}"#,
                Request::DrainNode {
                    node: "a".into(),
                    dry_run: true,
                },
            ),
            (
                r#"{"cmd":"drain-nodepool","nodepool":"p"}"#,
                Request::DrainNodepool {
                    nodepool: "p".into(),
                    dry_run: false,
                },
            ),
            (r#"{"cmd":"pause"}"#, Request::Pause),
            (
                r#"{"cmd":"rotate","nodepool":"p","dry_run":true}"#,
                Request::Rotate {
                    nodepool: "p".into(),
                    dry_run: true,
                },
            ),
            (
                r#"{"cmd":"rotate","nodepool":"p"}"#,
                Request::Rotate {
                    nodepool: "p".into(),
                    dry_run: false,
                },
            ),
            (
                r#"{"cmd":"rotation","nodepool":"p","action":"pause"}"#,
                Request::Rotation {
                    nodepool: "p".into(),
                    action: RotationAction::Pause,
                },
            ),
            (
                r#"{"cmd":"rotation","nodepool":"p","action":"resume"}"#,
                Request::Rotation {
                    nodepool: "p".into(),
                    action: RotationAction::Resume,
                },
            ),
            (
                r#"{"cmd":"rotation","nodepool":"p","action":"cancel"}"#,
                Request::Rotation {
                    nodepool: "p".into(),
                    action: RotationAction::Cancel,
                },
            ),
            (r#"{"cmd":"resume"}"#, Request::Resume),
            (
                r#"{"cmd":"cancel","node":"a"}"#,
                Request::Cancel {
                    run: None,
                    node: Some("a".into()),
                },
            ),
        ] {
            assert_eq!(parse(line.as_bytes()).unwrap(), want, "{line}");
        }
        for (line, needle) in [
            ("hello", "bad request"),
            (r#"{"cmd":"reboot"}"#, "unknown variant"),
            (r#"{"cmd":"drain-node"}"#, "node"),
            (r#"{"cmd":"status","x":1}"#, "unknown field"),
            (r#"{"cmd":"cancel"}"#, "exactly one"),
            (r#"{"cmd":"rotate"}"#, "nodepool"),
            (
                r#"{"cmd":"rotate","nodepool":"p","node":"a"}"#,
                "unknown field `node`",
            ),
            (r#"{"cmd":"rotation","nodepool":"p"}"#, "action"),
            (
                r#"{"cmd":"rotation","nodepool":"p","action":"stop"}"#,
                "unknown variant `stop`",
            ),
            (r#"{"cmd":"rotation","action":"pause"}"#, "nodepool"),
            ("\u{0}\u{1}", "bad request"),
        ] {
            let err = parse(line.as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{line}: {err}");
        }
        assert!(parse(&[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases()))]
        #[test]
        fn no_line_makes_the_parser_panic(line in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&line);
        }

        #[test]
        fn json_shaped_lines_never_panic(cmd in "[a-z-]{0,16}", node in ".{0,40}", dry in any::<bool>()) {
            let line = json!({"cmd": cmd, "node": node, "dry_run": dry}).to_string();
            let _ = parse(line.as_bytes());
        }
    }
}
