#!/usr/bin/env bash
# Shared setup for ./corral and ./test.sh: Node check, Debian packages,
# npm dependencies and the TypeScript build. Safe to run again: it only does
# what is missing. Source it, then call the functions.
set -euo pipefail

CORRAL_ROOT="${CORRAL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

say() { printf '==> %s\n' "$*" >&2; }

ensure_node() {
  if ! command -v node >/dev/null 2>&1; then
    say "installing Node.js from Debian"
    apt_install nodejs npm
  fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    echo "corral needs Node.js 20 or newer (found $(node --version)); install a newer Node.js and retry" >&2
    exit 1
  fi
}

# apt_install PKG... — installs the packages not yet installed (root only).
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  # Packages must not start system services of their own (etcd, docker, ceph…): corral starts its own.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$created" = 1 ] && rm -f "$policy"
  return 0
}

# Debian packages the real single-node stack of `corral up` runs (each one's use: cli/up/preflight.ts).
UP_PACKAGES=(
  iproute2        # ip: the node network namespace
  util-linux      # nsenter: the CNI daemon inside the node namespace
  mount           # losetup, umount: sized local volumes and their teardown
  e2fsprogs       # mkfs.ext4: sized local volumes
  busybox-static  # the demo app's web server (busybox httpd)
  dnsutils        # dig: the tour's DNS check
  curl            # the tour's HTTP check
  build-essential # cc and make: the task launcher and the CNI plugin (native/)
  libseccomp-dev  # the task launcher's default seccomp profile
)

ensure_npm_deps() {
  local stamp="$CORRAL_ROOT/node_modules/.corral-lock-hash" want
  want=$(sha256sum "$CORRAL_ROOT/package-lock.json" | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing npm dependencies"
    (cd "$CORRAL_ROOT" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$stamp"
  fi
}

build() {
  (cd "$CORRAL_ROOT" && npx --no-install tsc -p tsconfig.build.json)
  # The CNI plugin binary and its setns addon (C, no dependencies).
  if command -v cc >/dev/null 2>&1; then make -s -C "$CORRAL_ROOT/native/cni-shim"; fi
  # The native containerizer's task launcher and per-task supervisor (C, libc only).
  if command -v cc >/dev/null 2>&1; then make -s -C "$CORRAL_ROOT/native/task-shim"; fi
  local nodedir
  nodedir="$(node -p "require('path').resolve(process.execPath, '../..')")"
  # The DNS server's UDP fast path (corral_dns.node, libc only); without it DNS is served by node:dgram.
  if command -v c++ >/dev/null 2>&1; then
    local dnsgyp=(npx --no-install node-gyp --directory "$CORRAL_ROOT/native/dns" --nodedir="$nodedir" --loglevel=error)
    (cd "$CORRAL_ROOT" && { [ -f native/dns/build/Makefile ] || "${dnsgyp[@]}" configure; } && "${dnsgyp[@]}" build -j 2 >/dev/null) ||
      say "the DNS fast path (native/dns) did not build; DNS is served by node:dgram"
  fi
  # V8's external-memory count (corral_memory.node, libc only); without it servers leave open TLS connections' buffers in that count.
  if command -v c++ >/dev/null 2>&1; then
    local memgyp=(npx --no-install node-gyp --directory "$CORRAL_ROOT/native/memory" --nodedir="$nodedir" --loglevel=error)
    (cd "$CORRAL_ROOT" && { [ -f native/memory/build/Makefile ] || "${memgyp[@]}" configure; } && "${memgyp[@]}" build -j 2 >/dev/null) ||
      say "native/memory did not build; TLS servers leave their connections' buffers in V8's external-memory count"
  fi
  # The Ceph binding (corral_rados.node) when librados/librbd headers are installed; without it corral runs and reports rbd unavailable.
  if [ -f /usr/include/rados/librados.h ] && [ -f /usr/include/rbd/librbd.h ]; then
    local gyp=(npx --no-install node-gyp --directory "$CORRAL_ROOT/native" --nodedir="$nodedir" --loglevel=error)
    (cd "$CORRAL_ROOT" && { [ -f native/build/Makefile ] || "${gyp[@]}" configure; } && "${gyp[@]}" build -j 2 >/dev/null)
  fi
}
