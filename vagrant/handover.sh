#!/usr/bin/env bash
# The operator's side of the Vagrant lab, run on the host that runs `vagrant
# up` (the Vagrantfile calls it before each VM comes up): it keeps the
# cluster CA and every principal's secret in the operator directory, and
# makes one VM's bundle in that VM's own handover folder, which only that VM
# receives (an rsync synced folder to /etc/corral/bundle):
#
#   vagrant/.corral/              (0700, never synced to a VM)
#     operator/                   the CA (ca/ca.key), one secret per principal (secrets/),
#                                 admin.yaml (corral --credentials) and curlrc (curl -K)
#     <vm>/                       that VM's bundle: tls/ (ca.crt, its daemons' pairs,
#                                 keys 0600), security.yaml (every principal hashed,
#                                 its own secrets in plain text) and, for an agent,
#                                 ceph/ (the Ceph client files, see the Vagrantfile)
#
# Usage: handover.sh NAME ROLE ADDRESS PEERS [CONTROL_PLANE]
#   PEERS: every VM of the lab as name=role, comma-separated (their principals'
#   hashes go into this VM's security file, so the master accepts every host).
#   CONTROL_PLANE (control nodes of replicated masters): name=address of every
#   control node, comma-separated (the VM's etcd certificates).
# Environment: CORRAL_HANDOVER (default vagrant/.corral), CORRAL_FROM_SOURCE=1
# (run the TypeScript sources with tsx instead of the build).
# Needs Node.js 20 and the repository's npm dependencies (and its build,
# unless CORRAL_FROM_SOURCE=1) on the host.
set -euo pipefail

if [ "$#" -lt 4 ]; then
  echo "usage: $0 NAME ROLE ADDRESS PEERS [CONTROL_PLANE]" >&2
  exit 2
fi
NAME=$1
ROLE=$2
ADDRESS=$3
PEERS=$4
CONTROL_PLANE=${5:-}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
HANDOVER=${CORRAL_HANDOVER:-$HERE/.corral}

if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "the host running vagrant keeps the lab's CA and makes each VM's bundle with corral's CLI: it needs Node.js 20 or newer (and npm ci && npm run build in $ROOT)" >&2
  exit 1
fi

corral() {
  if [ "${CORRAL_FROM_SOURCE:-0}" = 1 ]; then
    (cd "$ROOT" && node --import tsx "$ROOT/cli/corral.ts" "$@")
  else
    node "$ROOT/bin/corral.js" "$@"
  fi
}

(umask 077 && mkdir -p "$HANDOVER")
chmod 700 "$HANDOVER"
plane=()
if [ -n "$CONTROL_PLANE" ]; then plane=(--control-plane "$CONTROL_PLANE"); fi
corral node bundle --operator-dir "$HANDOVER/operator" --role "$ROLE" --name "$NAME" --address "$ADDRESS" \
  --peers "$PEERS" --out "$HANDOVER/$NAME" ${plane[@]+"${plane[@]}"} # (the bash 3 of macOS: an empty array is unset)
