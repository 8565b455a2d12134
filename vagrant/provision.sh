#!/usr/bin/env bash
# Provisions one VM of the Vagrant lab as a corral node, with the same
# per-machine step the namespace lab runs in each host namespace:
#   1. packages, Node.js 20, npm dependencies and the build (scripts/setup.sh);
#   2. the node file: `corral node init --bundle` → /etc/corral/node.json, from
#      the bundle the operator (the host running vagrant, handover.sh) made for
#      this VM alone and handed over in /etc/corral/bundle: its certificates and
#      its security file (every principal hashed, its own secrets in plain
#      text), never the CA's key. Every daemon then runs on HTTPS with
#      authentication. An agent's bundle also holds the Ceph client files
#      (ceph/), installed into /etc/corral/ceph;
#   3. `corral node up --config /etc/corral/node.json`, run by a systemd unit
#      (corral-node.service) so the node comes back after a reboot.
#
# Usage: provision.sh control|agent NAME ADDRESS CONTROL_ADDRESS [AGENT_TIMEOUT_MS] [CONTROL_PLANE]
#   CONTROL_ADDRESS: the (first) control node; for an agent of replicated
#   masters, every control node's address, comma-separated.
#   CONTROL_PLANE (control nodes of replicated masters): name=address of
#   every control node, comma-separated; each runs an etcd member and a
#   master, the first also Ceph and the service framework.
# Environment: CORRAL_ROOT (the repository, default /corral), CORRAL_ETC
# (default /etc/corral), CORRAL_BUNDLE (this VM's bundle, default
# $CORRAL_ETC/bundle), CORRAL_CEPH_CLIENTS (control node with Ceph: the
# agents, comma-separated, each given its own Ceph client; the Vagrantfile sets it), CORRAL_DRY_RUN=1 (only check the bundle and write the
# node file and the Ceph client files: no packages, no build, no systemd, no
# network; what the repository's test runs, test/provision/vagrant.test.ts).
set -euo pipefail

if [ "$#" -lt 4 ]; then
  echo "usage: $0 control|agent NAME ADDRESS CONTROL_ADDRESS [AGENT_TIMEOUT_MS] [CONTROL_PLANE]" >&2
  exit 2
fi
ROLE=$1
NAME=$2
ADDRESS=$3
CONTROL=$4
AGENT_TIMEOUT_MS=${5:-5000}
CONTROL_PLANE=${6:-}
# The first control node (of a list): it runs Ceph.
FIRST_CONTROL=${CONTROL%%,*}
case "$ROLE" in
  control | agent) ;;
  *)
    echo "role must be control or agent, not $ROLE" >&2
    exit 2
    ;;
esac

CORRAL_ROOT=${CORRAL_ROOT:-/corral}
export CORRAL_ROOT
ETC=${CORRAL_ETC:-/etc/corral}
NODE_FILE=$ETC/node.json
BUNDLE=${CORRAL_BUNDLE:-$ETC/bundle}
CEPH_CONF=$ETC/ceph/ceph.client.conf
CEPH_KEYRING=$ETC/ceph/keyring
# shellcheck source=../scripts/setup.sh
source "$CORRAL_ROOT/scripts/setup.sh"

COMMON_PACKAGES=(
  iproute2        # ip: the CNI dataplane's checks, routes
  util-linux      # nsenter, setpriv (exabgp dies with the CNI daemon), losetup
  mount           # umount: volume teardown
  e2fsprogs       # mkfs.ext4 on rbd volumes
  curl            # try the APIs (with the operator's curl config, on the host)
  dnsutils        # dig: try the discovery DNS
  build-essential # the CNI shim and the task launcher (native/)
  python3         # exabgp's API bridge
  ceph-common     # rbd, rados, ceph CLIs
  librados-dev    # the Ceph binding (native/)
  librbd-dev
)
CONTROL_PACKAGES=(ceph-mon ceph-osd etcd-server)
AGENT_PACKAGES=(exabgp rbd-fuse iputils-ping)

# Node.js 20 or newer: Debian 12 ships 18, so Node 20 comes from the npm
# registry (the `node` package installs the official binary in /usr/local/bin).
ensure_node20() {
  if command -v node >/dev/null 2>&1 && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]; then
    return 0
  fi
  apt_install nodejs npm
  npm install -g --no-audit --no-fund node@20
  hash -r
}

# The built CLI (CORRAL_FROM_SOURCE=1: run the TypeScript sources with tsx, as the repository's tests do).
corral() {
  if [ "${CORRAL_FROM_SOURCE:-0}" = 1 ]; then
    node --import tsx "$CORRAL_ROOT/cli/corral.ts" "$@"
  else
    node "$CORRAL_ROOT/bin/corral.js" "$@"
  fi
}

# The bundle must be there, this VM's only, and root's alone (the synced folder
# keeps the host's modes; enforced again here). A CA key is never part of it.
check_bundle() {
  local missing=()
  for f in security.yaml tls/ca.crt; do [ -f "$BUNDLE/$f" ] || missing+=("$f"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "this VM's bundle is incomplete in $BUNDLE (missing: ${missing[*]}): the host running vagrant makes it (vagrant/handover.sh, into vagrant/.corral/$NAME) and syncs it here" >&2
    exit 1
  fi
  if [ -n "$(find "$BUNDLE" -name ca.key -print -quit)" ]; then
    echo "$BUNDLE holds a CA key: the CA's key stays with the operator; remake the bundle with vagrant/handover.sh" >&2
    exit 1
  fi
  if [ "$(id -u)" -eq 0 ]; then chown -R root:root "$BUNDLE"; fi
  find "$BUNDLE" -type d -exec chmod 700 {} +
  find "$BUNDLE" -type f \( -name '*.key' -o -name security.yaml -o -name keyring \) -exec chmod 600 {} +
}

# THE HOST'S CEPH KEYRING: the Ceph client files an agent uses come in its
# bundle (ceph/ceph.client.conf and ceph/keyring: its own client's, which the
# control node made, fetched by the Vagrantfile over Vagrant's ssh channel)
# and are installed here, the keyring 0600 in a 0700 directory.
install_ceph_client_files() {
  local from=$BUNDLE/ceph
  if [ ! -f "$from/ceph.client.conf" ] || [ ! -f "$from/keyring" ]; then
    echo "this agent's bundle has no Ceph client files ($from/ceph.client.conf, $from/keyring): the Vagrantfile fetches them from the control node, which must be up first" >&2
    exit 1
  fi
  (umask 077 && mkdir -p "$ETC/ceph")
  chmod 700 "$ETC/ceph"
  install -m 0644 "$from/ceph.client.conf" "$CEPH_CONF"
  install -m 0600 "$from/keyring" "$CEPH_KEYRING"
}

write_node_file() {
  mkdir -p "$ETC"
  check_bundle
  if [ "$ROLE" = control ]; then
    local extra=(--ceph)
    # Replicated masters: Ceph only on the first control node.
    if [ -n "$CONTROL_PLANE" ]; then
      extra=(--control-plane "$CONTROL_PLANE")
      if [ "$ADDRESS" = "$FIRST_CONTROL" ]; then extra+=(--ceph); fi
    fi
    # The agents given their own Ceph client each (the Vagrantfile hands each its files).
    if [ -n "${CORRAL_CEPH_CLIENTS:-}" ] && [[ " ${extra[*]} " == *" --ceph "* ]]; then extra+=(--ceph-clients "$CORRAL_CEPH_CLIENTS"); fi
    corral node init --role control --name "$NAME" --address "$ADDRESS" --bundle "$BUNDLE" "${extra[@]}" --agent-timeout-ms "$AGENT_TIMEOUT_MS" >"$NODE_FILE.tmp"
  else
    install_ceph_client_files
    corral node init --role agent --name "$NAME" --address "$ADDRESS" --control "$CONTROL" --bundle "$BUNDLE" --ceph-conf "$CEPH_CONF" --ceph-keyring "$CEPH_KEYRING" >"$NODE_FILE.tmp"
  fi
  mv "$NODE_FILE.tmp" "$NODE_FILE"
}

install_unit() {
  cat >/etc/systemd/system/corral-node.service <<UNIT
[Unit]
Description=corral $ROLE node $NAME (corral node up)
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
Environment=CORRAL_ROOT=$CORRAL_ROOT
ExecStart=/usr/bin/env node $CORRAL_ROOT/bin/corral.js node up --config $NODE_FILE
ExecStop=/usr/bin/env node $CORRAL_ROOT/bin/corral.js node down --config $NODE_FILE
# The daemons are detached and stopped by ExecStop; tasks must outlive an agent restart.
KillMode=none
TimeoutStartSec=300

[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable corral-node.service >/dev/null
}

if [ "${CORRAL_DRY_RUN:-0}" = 1 ]; then
  write_node_file
  exit 0
fi

apt_install "${COMMON_PACKAGES[@]}"
if [ "$ROLE" = control ]; then apt_install "${CONTROL_PACKAGES[@]}"; else apt_install "${AGENT_PACKAGES[@]}"; fi
ensure_node20
ensure_node
ensure_npm_deps
build
write_node_file
install_unit
systemctl restart corral-node.service
corral node status --config "$NODE_FILE"
say "$ROLE node $NAME is up at $ADDRESS"
