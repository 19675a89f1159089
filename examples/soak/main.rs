//! bench/soak's helper: `soak sample` records the managed NodePool's nodes, the
//! soak workloads' pods and their PDBs at 2 Hz (one JSON line each); `soak check`
//! reads those samples, the API server's audit log and what the driver logged
//! (alerts sent), and prints the invariant table. Not a test: a benchmark tool.

mod audit;
mod check;
mod sample;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("sample") => sample::main(&args[1..]),
        Some("check") => check::main(&args[1..]),
        _ => anyhow::bail!(
            "usage: soak sample OUT NODEPOOL NAMESPACE | soak check KEY=VALUE... (see bench/soak)"
        ),
    }
}

/// `KEY=VALUE` arguments, so bench/soak names what it passes.
pub fn arg<'a>(args: &'a [String], key: &str) -> anyhow::Result<&'a str> {
    args.iter()
        .find_map(|a| a.strip_prefix(key)?.strip_prefix('='))
        .ok_or_else(|| anyhow::anyhow!("missing {key}=..."))
}
