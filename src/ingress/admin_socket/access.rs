//! Who may talk on the admin socket: the daemon's own effective uid, and the
//! members of `--admin-gid`. The kernel checks the file's mode first (0600, or
//! 0660 with the admin group as the file's group); the daemon checks the
//! peer's credentials again (SO_PEERCRED, and the peer's supplementary groups
//! from `/proc`), so a socket file opened up by mistake still lets no one else
//! in.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The peer's credentials, as the kernel gave them when it connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    /// Its effective gid.
    pub gid: u32,
    /// Its supplementary groups (empty when they cannot be read).
    pub groups: Vec<u32>,
}

/// Whether `peer` may talk to a daemon running as `own_uid`.
pub fn allowed(peer: &Peer, own_uid: u32, admin_gid: Option<u32>) -> bool {
    peer.uid == own_uid
        || admin_gid.is_some_and(|gid| peer.gid == gid || peer.groups.contains(&gid))
}

/// The daemon's effective uid: who it is, not who owns the socket file.
pub fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The supplementary groups of process `pid` (the `Groups:` line of its
/// `/proc/<pid>/status`); empty when they cannot be read.
pub fn supplementary_groups(pid: Option<i32>) -> Vec<u32> {
    let Some(pid) = pid else {
        return vec![];
    };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Groups:"))
                .map(|groups| {
                    groups
                        .split_whitespace()
                        .filter_map(|g| g.parse().ok())
                        .collect()
                })
        })
        .unwrap_or_default()
}

/// The socket file's mode and group: 0600 the daemon's alone; with an admin
/// group, 0660 and that group's.
pub fn restrict(path: &Path, admin_gid: Option<u32>) -> std::io::Result<()> {
    match admin_gid {
        None => std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)),
        Some(gid) => {
            std::os::unix::fs::chown(path, None, Some(gid))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_uid_and_the_admin_group_may_talk_no_one_else() {
        let peer = |uid, gid, groups: &[u32]| Peer {
            uid,
            gid,
            groups: groups.to_vec(),
        };
        let cases = [
            (peer(1000, 1000, &[]), None, true),
            (peer(0, 0, &[]), None, false),
            (peer(65534, 65534, &[]), None, false),
            (peer(65534, 65534, &[]), Some(4242), false),
            (peer(65534, 4242, &[]), Some(4242), true),
            (peer(65534, 65534, &[10, 4242]), Some(4242), true),
            (peer(1000, 5, &[]), Some(4242), true),
        ];
        for (p, gid, want) in cases {
            assert_eq!(
                allowed(&p, 1000, gid),
                want,
                "{p:?} with --admin-gid {gid:?}"
            );
        }
    }

    #[test]
    fn the_own_uid_is_the_effective_uid_and_groups_are_read_from_proc() {
        assert_eq!(own_uid(), unsafe { libc::geteuid() });
        let own = supplementary_groups(Some(std::process::id() as i32));
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Groups:")).unwrap();
        assert_eq!(own.len(), line.split_whitespace().count() - 1, "{line}");
        assert!(supplementary_groups(None).is_empty());
    }

    #[test]
    fn the_socket_file_is_0600_or_0660_of_the_admin_group() {
        use std::os::unix::fs::MetadataExt;
        let path = std::env::temp_dir().join(format!("node-drain-access-{}", fastrand::u64(..)));
        std::fs::write(&path, "").unwrap();
        restrict(&path, None).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        // SAFETY: getegid has no preconditions.
        let gid = unsafe { libc::getegid() };
        restrict(&path, Some(gid)).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.mode() & 0o777, meta.gid()), (0o660, gid));
        let _ = std::fs::remove_file(&path);
    }
}
