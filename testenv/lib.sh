# Shared helpers for the testenv scripts. Sourced, never run.
set -euo pipefail
TESTENV_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$TESTENV_DIR/.." && pwd)
# shellcheck source=versions.env
. "$TESTENV_DIR/versions.env"
VERSION_KEY=$(sha256sum "$TESTENV_DIR/versions.env" | cut -c1-16)
CACHE_ROOT="${NODE_DRAIN_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/node-drain-testenv}"
BIN_DIR="$CACHE_ROOT/$VERSION_KEY/bin"
STATE_DIR="${NODE_DRAIN_TESTENV_STATE:-$REPO_ROOT/.testenv}"

log() { printf '[testenv %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
