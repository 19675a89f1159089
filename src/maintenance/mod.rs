//! Maintenance windows (`maintenanceWindows` in the daemon's config): when
//! rotation waves may start. `cron` reads the schedules, `window` decides
//! whether a time is inside one and when the next opens.

pub mod cron;
pub mod window;

pub use window::{state, Window, WindowSpec, WindowState};
