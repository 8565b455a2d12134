#!/usr/bin/env bash
# Provisions one VM of the Vagrant lab as a corral node, with the same
# per-machine step the namespace lab runs in each host namespace:
#   1. packages, Node.js 20, npm dependencies and the build (scripts/setup.sh);
#   2. the node file: `corral node init` → /etc/corral/node.json;
#   3. `corral node up --config /etc/corral/node.json`, run by a systemd unit
#      (corral-node.service) so the node comes back after a reboot.
# The control node publishes its Ceph client files in its own Consul KV
# (discovery, port 8500); agents fetch them from there before their node up.
# Discovery's ACLs deny anonymous KV access: the control node writes with its
# management token (the 0600 file `corral node up` made) and creates a token
# that reads only the lab's KV prefix, whose secret the Vagrantfile hands
# every VM as CORRAL_LAB_KV_TOKEN; agents read with it.
#
# Usage: provision.sh control|agent NAME ADDRESS CONTROL_ADDRESS [AGENT_TIMEOUT_MS] [CONTROL_PLANE]
#   CONTROL_ADDRESS: the (first) control node; for an agent of replicated
#   masters, every control node's address, comma-separated.
#   CONTROL_PLANE (control nodes of replicated masters): name=address of
#   every control node, comma-separated; each runs an etcd member and a
#   master, the first also Ceph and the service framework.
# Environment: CORRAL_ROOT (the repository, default /corral), CORRAL_ETC
# (default /etc/corral), CORRAL_LAB_KV_TOKEN (the lab's KV read token; the
# Vagrantfile sets it), CORRAL_DRY_RUN=1 (only write the node file: no
# packages, no build, no systemd, no network; what the repository's test
# runs, test/provision/vagrant.test.ts).
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
# The control node that serves Ceph's client files (the first of a list).
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
KV_PREFIX=corral/lab
# shellcheck source=../scripts/setup.sh
source "$CORRAL_ROOT/scripts/setup.sh"

COMMON_PACKAGES=(
  iproute2        # ip: the CNI dataplane's checks, routes
  util-linux      # nsenter, setpriv (exabgp dies with the CNI daemon), losetup
  mount           # umount: volume teardown
  e2fsprogs       # mkfs.ext4 on rbd volumes
  curl            # the Ceph client files from the control node's KV
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

# token_header FILE TOKEN: a curl header file carrying an ACL token (0600: a
# token on curl's command line would show in the process list).
token_header() {
  (umask 077 && printf 'X-Consul-Token: %s\n' "$2" >"$1")
}

# fetch_from_control KEY FILE: waits (up to 10 min) for the control node to publish KEY.
fetch_from_control() {
  local url="http://$FIRST_CONTROL:8500/v1/kv/$KV_PREFIX/$1?raw" tries=0
  if [ -z "${CORRAL_LAB_KV_TOKEN:-}" ]; then
    echo "CORRAL_LAB_KV_TOKEN is not set: the control node's KV needs a token (the Vagrantfile sets it)" >&2
    exit 1
  fi
  local header=$ETC/.kv-read-token
  token_header "$header" "$CORRAL_LAB_KV_TOKEN"
  until curl -sSf --max-time 5 -H "@$header" -o "$2.tmp" "$url"; do
    tries=$((tries + 1))
    if [ "$tries" -ge 300 ]; then
      echo "the control node ($FIRST_CONTROL) did not publish $1" >&2
      exit 1
    fi
    sleep 2
  done
  mv "$2.tmp" "$2"
}

# The management token of this node's discovery daemon, as a curl header file.
management_header() {
  local file
  file=$(corral node plan --config "$NODE_FILE" | node -e 'let s="";process.stdin.on("data",(c)=>s+=c).on("end",()=>{const d=JSON.parse(s).daemons.find((x)=>x.name==="discovery");process.stdout.write(d?.config?.acl?.bootstrapTokenFile??"")})')
  [ -n "$file" ] || return 0
  token_header "$ETC/.kv-management-token" "$(cat "$file")"
  echo "-H" "@$ETC/.kv-management-token"
}

publish_to_kv() {
  # shellcheck disable=SC2046 # the header arguments split on purpose (none when ACLs are off)
  curl -sSf --max-time 10 $(management_header) -X PUT --data-binary "@$2" "http://$ADDRESS:8500/v1/kv/$KV_PREFIX/$1" >/dev/null
}

# The token agents read the lab's KV with: a policy reading $KV_PREFIX/ only, and a token with the
# Vagrantfile's secret. Again on a re-provision: an existing policy or token is a 400, taken as done.
create_kv_read_token() {
  [ -n "${CORRAL_LAB_KV_TOKEN:-}" ] || return 0
  local api="http://$ADDRESS:8500/v1/acl" code
  # shellcheck disable=SC2046
  code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' $(management_header) -X PUT "$api/policy" \
    --data "{\"Name\":\"lab-kv-read\",\"Description\":\"agents read the Ceph client files\",\"Rules\":\"key_prefix \\\"$KV_PREFIX/\\\" { policy = \\\"read\\\" }\"}")
  case "$code" in 200 | 400) ;; *) echo "creating the lab KV policy failed ($code)" >&2 && exit 1 ;; esac
  # The secret goes in a body read from a 0600 file, not on the command line.
  local body=$ETC/.kv-read-token.json
  (umask 077 && printf '{"Description":"lab agents: KV read","SecretID":"%s","Policies":[{"Name":"lab-kv-read"}]}' "$CORRAL_LAB_KV_TOKEN" >"$body")
  # shellcheck disable=SC2046
  code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' $(management_header) -X PUT "$api/token" --data-binary "@$body")
  rm -f "$body"
  case "$code" in 200 | 400) ;; *) echo "creating the lab KV token failed ($code)" >&2 && exit 1 ;; esac
}

write_node_file() {
  mkdir -p "$ETC"
  if [ "$ROLE" = control ]; then
    local extra=(--ceph)
    # Replicated masters: Ceph only on the first control node.
    if [ -n "$CONTROL_PLANE" ]; then
      extra=(--control-plane "$CONTROL_PLANE")
      if [ "$ADDRESS" = "$FIRST_CONTROL" ]; then extra+=(--ceph); fi
    fi
    corral node init --role control --name "$NAME" --address "$ADDRESS" "${extra[@]}" --agent-timeout-ms "$AGENT_TIMEOUT_MS" >"$NODE_FILE.tmp"
  else
    local conf=$ETC/ceph/ceph.client.conf keyring=$ETC/ceph/keyring
    if [ "${CORRAL_DRY_RUN:-0}" != 1 ]; then
      mkdir -p "$ETC/ceph"
      chmod 700 "$ETC/ceph"
      fetch_from_control ceph.client.conf "$conf"
      fetch_from_control keyring "$keyring"
      chmod 600 "$keyring"
    fi
    corral node init --role agent --name "$NAME" --address "$ADDRESS" --control "$CONTROL" --ceph-conf "$conf" --ceph-keyring "$keyring" >"$NODE_FILE.tmp"
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
if [ "$ROLE" = control ] && [ "$ADDRESS" = "$FIRST_CONTROL" ]; then
  ceph_dir=$(corral node plan --config "$NODE_FILE" | node -e 'let s="";process.stdin.on("data",(c)=>s+=c).on("end",()=>process.stdout.write(JSON.parse(s).ceph.dir))')
  create_kv_read_token
  publish_to_kv ceph.client.conf "$ceph_dir/ceph.client.conf"
  publish_to_kv keyring "$ceph_dir/keyring"
fi
corral node status --config "$NODE_FILE"
say "$ROLE node $NAME is up at $ADDRESS"
