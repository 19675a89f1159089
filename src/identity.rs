//! Who this process is: the holder recorded on the Nodes a run claims and on
//! the leader-election Lease, the User-Agent's suffix, and node-drain's own
//! pod and node (never evicted; its node goes last). Read once per process:
//! two readings must never differ.
//!
//! The holder is `POD_NAME` (the downward API), else the host name and a
//! random suffix, as controller-runtime does (`<hostname>_<uuid>`): two
//! processes on one host, or two hosts without `HOSTNAME` in their
//! environment (systemd exports none), never share an identity. Sharing one
//! would make both the holder of one Lease, both leaders.

use std::sync::OnceLock;

use crate::drain::PodRef;

#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// Pod name, or host name and a random suffix: recorded as the holder of
    /// the nodes a run claims and of the Lease.
    pub holder: String,
    /// node-drain's own pod (downward API `POD_NAMESPACE`/`POD_NAME`).
    pub own_pod: Option<PodRef>,
    /// The node it runs on (downward API `NODE_NAME`).
    pub own_node: Option<String>,
}

/// `flag` when given, else node-drain's own namespace (downward API
/// `POD_NAMESPACE`) in-cluster, else `default`.
pub fn namespace_or_own(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| {
            std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|v| !v.is_empty())
        })
        .unwrap_or_else(|| "default".into())
}

impl Identity {
    /// This process's identity, read from the environment the first time.
    pub fn from_env() -> Self {
        static IDENTITY: OnceLock<Identity> = OnceLock::new();
        IDENTITY
            .get_or_init(|| {
                Self::from_vars(
                    |k| std::env::var(k).ok().filter(|v| !v.is_empty()),
                    hostname(),
                )
            })
            .clone()
    }

    /// From the variables `var` gives and the host name (pure but for the
    /// random suffix).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>, hostname: Option<String>) -> Self {
        let own_pod = match (var("POD_NAMESPACE"), var("POD_NAME")) {
            (Some(namespace), Some(name)) => Some(PodRef { namespace, name }),
            _ => None,
        };
        let host = hostname
            .or_else(|| var("HOSTNAME"))
            .unwrap_or_else(|| "node-drain".into());
        Self {
            holder: var("POD_NAME").unwrap_or_else(|| format!("{host}_{}", random_uuid())),
            own_pod,
            own_node: var("NODE_NAME"),
        }
    }
}

/// The kernel's host name (not the `HOSTNAME` variable, which only shells set).
fn hostname() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most
    // that many bytes and we stop at the first NUL (or the end).
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if rc != 0 {
        return None;
    }
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    let name = String::from_utf8_lossy(&buffer[..end]).trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// A random (version 4) UUID.
fn random_uuid() -> String {
    let n = fastrand::u128(..);
    let n = (n & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn the_pod_name_else_the_host_name_and_a_random_suffix() {
        let pod = Identity::from_vars(
            vars(&[("POD_NAME", "serve-0"), ("POD_NAMESPACE", "ops")]),
            Some("host".into()),
        );
        assert_eq!(pod.holder, "serve-0");
        assert_eq!(
            pod.own_pod.map(|p| p.to_string()).as_deref(),
            Some("ops/serve-0")
        );

        // Neither POD_NAME nor HOSTNAME (systemd): two processes on one host differ.
        let a = Identity::from_vars(vars(&[]), Some("host".into()));
        let b = Identity::from_vars(vars(&[]), Some("host".into()));
        assert_ne!(a.holder, b.holder);
        assert_ne!(a.holder, "cli");
        assert!(a.holder.starts_with("host_"), "{}", a.holder);
        let uuid = a.holder.trim_start_matches("host_");
        assert_eq!(uuid.len(), 36, "{uuid}");
        assert_eq!(&uuid[14..15], "4", "version 4: {uuid}");

        // No host name either: still unique.
        let c = Identity::from_vars(vars(&[]), None);
        assert!(c.holder.starts_with("node-drain_"), "{}", c.holder);
    }

    #[test]
    fn the_process_identity_is_read_once() {
        assert_eq!(Identity::from_env().holder, Identity::from_env().holder);
        assert!(hostname().is_some());
    }
}
