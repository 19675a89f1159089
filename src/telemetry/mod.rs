//! Logging: tracing to stderr, `--log-format text|json`, level from RUST_LOG
//! (default info). Standard output is kept for the command's own output. While
//! progress bars are drawn, log lines are printed above them, not through them.

/// The node_drain_* metrics registry.
pub mod metrics;

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::MultiProgress;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// The bars' output while a drain draws them.
static PROGRESS: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// The MultiProgress that log lines must not tear (created on first use).
pub fn progress_output() -> MultiProgress {
    let mut slot = PROGRESS.lock().unwrap_or_else(|e| e.into_inner());
    slot.get_or_insert_with(MultiProgress::new).clone()
}

pub fn clear_progress_output() {
    *PROGRESS.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Standard error, suspended around the bars when they are drawn.
pub struct Stderr;

/// One log line, written whole when dropped.
pub struct LineWriter(Vec<u8>);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let bars = PROGRESS.lock().ok().and_then(|slot| slot.clone());
        let line = std::mem::take(&mut self.0);
        match bars {
            Some(multi) => multi.suspend(|| {
                let _ = std::io::stderr().write_all(&line);
            }),
            None => {
                let _ = std::io::stderr().write_all(&line);
            }
        }
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(Vec::with_capacity(256))
    }
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// An error with its causes (reqwest's Display stops at "error sending request").
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
