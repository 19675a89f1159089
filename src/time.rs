//! Kubernetes timestamps (jiff, from k8s-openapi) as chrono times, which the
//! plan and the cron schedules use.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub fn to_utc(time: &Time) -> DateTime<Utc> {
    let t = time.0;
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32).unwrap_or_default()
}
