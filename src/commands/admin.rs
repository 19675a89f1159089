//! `node-drain admin <command>`: one request to the daemon's admin socket,
//! its answer printed (indented JSON, or one line with `--output json`).
//! Exit 0 when the daemon answered ok, 1 when it answered an error.

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::cli::{AdminArgs, AdminCommand, OutputFormat};
use crate::error::{Error, Result};

pub async fn run(args: AdminArgs) -> Result<i32> {
    let request = match &args.command {
        AdminCommand::Status => json!({"cmd": "status"}),
        AdminCommand::Plan { nodepool } => json!({"cmd": "plan", "nodepool": nodepool}),
        AdminCommand::DrainNode { node, dry_run } => {
            json!({"cmd": "drain-node", "node": node, "dry_run": dry_run})
        }
        AdminCommand::DrainNodepool { nodepool, dry_run } => {
            json!({"cmd": "drain-nodepool", "nodepool": nodepool, "dry_run": dry_run})
        }
        AdminCommand::Rotate { nodepool, dry_run } => {
            json!({"cmd": "rotate", "nodepool": nodepool, "dry_run": dry_run})
        }
        AdminCommand::Rotation { action, nodepool } => {
            json!({"cmd": "rotation", "nodepool": nodepool, "action": action})
        }
        AdminCommand::Pause => json!({"cmd": "pause"}),
        AdminCommand::Resume => json!({"cmd": "resume"}),
        AdminCommand::Cancel { run, node } => json!({"cmd": "cancel", "run": run, "node": node}),
    };
    let socket = args.admin_socket.display().to_string();
    let unreachable = |e: std::io::Error| {
        Error::Usage(format!("admin socket {socket}: {e} (is node-drain serve running, and is this its --admin-socket?)"))
    };
    let mut stream = UnixStream::connect(&args.admin_socket)
        .await
        .map_err(unreachable)?;
    // The daemon may answer and close before the request is written (a uid it
    // refuses): read its answer even when the write failed.
    let wrote = stream.write_all(format!("{request}\n").as_bytes()).await;
    let mut line = String::new();
    let read = BufReader::new(stream).read_line(&mut line).await;
    if line.trim().is_empty() {
        let e = wrote.err().or(read.err()).unwrap_or_else(|| {
            std::io::Error::other("the daemon closed the connection without an answer")
        });
        return Err(unreachable(e));
    }
    let answer: Value = serde_json::from_str(&line)
        .map_err(|e| Error::Internal(format!("the daemon's answer is not JSON ({e}): {line:?}")))?;
    match args.output {
        OutputFormat::Json => println!("{answer}"),
        OutputFormat::Text => match answer.get("error").and_then(Value::as_str) {
            Some(error) => eprintln!("error: {error}"),
            None => println!(
                "{}",
                serde_json::to_string_pretty(&answer).unwrap_or_default()
            ),
        },
    }
    Ok(if answer["ok"] == json!(true) { 0 } else { 1 })
}
