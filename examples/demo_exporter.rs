//! A node-exporter stand-in for `scripts/demo`: serves, on 127.0.0.1 (an
//! ephemeral port, printed first), the filesystem series node-exporter would
//! report for one node whose root filesystem is 96 % full and filling
//! (1 MB/s of 100 GB: empty in about 70 minutes, well inside the 4 h horizon
//! of the predictive NodeFilesystemSpaceFillingUp rule). The series carry
//! `instance=<node name>` as kube-prometheus relabels node-exporter, and a
//! `demo` label so the demo's rules see only them.
//!
//! `cargo run --example demo_exporter -- <node> [<demo label value>]`

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SIZE: f64 = 100e9;
const FULL_AT_START: f64 = 0.96;
const FILLING_BYTES_PER_SECOND: f64 = 1e6;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(node) = args.next() else {
        eprintln!("usage: demo_exporter <node> [<demo label value>]");
        std::process::exit(2);
    };
    let demo = args.next().unwrap_or_else(|| "node-drain-demo".into());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("demo exporter listening on {}", listener.local_addr()?);
    let started = Instant::now();
    loop {
        let (mut stream, _) = listener.accept().await?;
        let avail = SIZE * (1.0 - FULL_AT_START)
            - FILLING_BYTES_PER_SECOND * started.elapsed().as_secs_f64();
        let labels = format!(
            "job=\"node-exporter\",demo=\"{demo}\",instance=\"{node}\",device=\"/dev/nvme0n1p1\",fstype=\"ext4\",mountpoint=\"/\""
        );
        let body = format!(
            "# TYPE node_filesystem_avail_bytes gauge\nnode_filesystem_avail_bytes{{{labels}}} {avail}\n\
             # TYPE node_filesystem_size_bytes gauge\nnode_filesystem_size_bytes{{{labels}}} {SIZE}\n\
             # TYPE node_filesystem_readonly gauge\nnode_filesystem_readonly{{{labels}}} 0\n"
        );
        tokio::spawn(async move {
            // The request itself does not matter: read what came, answer.
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
