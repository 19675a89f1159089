//! The daemon's fronts: HTTP (the Alertmanager webhook, probes, metrics,
//! status) and the admin socket. Both only read, check and answer; what they
//! ask for goes to the shared actors through `Daemon` (`intake`).

pub mod admin_socket;
pub mod admission;
pub mod http;
pub mod intake;
