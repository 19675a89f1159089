use actix::Message;
use tokio_util::sync::CancellationToken;

use crate::drain::progress::Removal;
use crate::drain::PodRef;
use crate::k8s::pods::RemovalRequest;

/// Asks the evictor pool to remove one planned pod. The answer is also recorded
/// in the node's progress, so a restarted node actor sees it.
#[derive(Debug, Message)]
#[rtype(result = "Removal")]
pub struct RemovePod {
    pub node: String,
    pub pod: PodRef,
    pub uid: String,
    pub how: RemovalRequest,
    /// Deleted past its PDB (`--on-timeout force`) or with grace 0: recorded and
    /// counted as a forced deletion, once, when it is done.
    pub forced: bool,
    /// Why the pod is removed this way (a problem pod's state), for the log.
    pub reason: Option<String>,
    /// Give up (Refused) rather than retry past this moment: the node's
    /// deadline, or for `--on-timeout force` the window of the tier forced.
    pub deadline: tokio::time::Instant,
    /// The node's stop: cancelled, the removal answers Stopped without another request.
    pub stop: CancellationToken,
}
