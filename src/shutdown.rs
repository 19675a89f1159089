//! Process signals: SIGINT and SIGTERM are listened for once, for the whole
//! process, so a signal that lands at any moment is never lost (a listener
//! re-created in a loop drops the ones that arrive between two turns).

use tracing::warn;

/// Calls `on_signal` with the signal's name for every SIGINT or SIGTERM from
/// now on. Where signals cannot be had, it never calls.
pub fn on_signals(on_signal: impl Fn(&'static str) + Send + 'static) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (interrupt, terminate) = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(i), Ok(t)) => (i, t),
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = e.to_string().as_str(), "cannot listen for signals");
                return;
            }
        };
        tokio::spawn(async move {
            let (mut interrupt, mut terminate) = (interrupt, terminate);
            loop {
                let name = tokio::select! {
                    Some(()) = interrupt.recv() => "SIGINT",
                    Some(()) = terminate.recv() => "SIGTERM",
                    else => return,
                };
                on_signal(name);
            }
        });
    }
    #[cfg(not(unix))]
    let _ = on_signal;
}
