#!/usr/bin/env bash
# Runs the whole test suite, doing its own setup: Debian packages for the
# real peers the tests start (etcd, …), npm dependencies, build, then vitest.
# Whatever a test leaves behind (processes, mounts, namespaces, loop devices)
# is cleaned up on exit, even when tests fail. Extra arguments go to vitest.
set -euo pipefail
CORRAL_ROOT="$(cd "$(dirname "$0")" && pwd)"
export CORRAL_ROOT
source "$CORRAL_ROOT/scripts/setup.sh"

# Real peers the integration tests start. One line per component.
PACKAGES=(
  etcd-server            # Store: etcd backend contract tests
  dnsutils               # discovery: dig, the DNS client the tests drive
  knot                   # discovery: knot, the forwarding upstream in tests and the DNS peer in benchmarks
  dnsperf                # discovery: DNS load generator for bench/discovery-dns.ts
  exabgp                 # cni: the BGP speaker of every lab host
  bird2                  # cni: route reflector interoperating with exabgp in the lab test
  containernetworking-plugins # cni: reference portmap/bandwidth (chaining) and ptp/host-local (benchmark)
  iptables               # cni: portmap programs NAT rules with it
  iproute2               # cni: ip/tc in tests and the lab set-up
  iputils-ping           # cni: cross-host pings in the tests
  curl                   # cni: lab health checks inside namespaces
  util-linux             # cni: setpriv ties exabgp to its daemon (PR_SET_PDEATHSIG)
  build-essential        # cni: cc and make for native/cni-shim
  docker.io              # volumes: the private dockerd of the volume plugin tests (and the Docker containerizer's)
  busybox-static         # volumes: rootfs of the test image made with docker import (no registry here)
  ceph-mon               # volumes: the one-node test cluster (rbd backend, native binding)
  ceph-osd               # volumes: its memstore OSD
  ceph-common            # volumes: ceph/rbd/rados CLIs (cluster set-up, rbd bench)
  librados-dev           # volumes: headers and -lrados for native/ (corral_rados.node)
  librbd-dev             # volumes: headers and -lrbd for native/
  rbd-fuse               # volumes: rbd attach on kernels without the rbd module
  e2fsprogs              # volumes: mkfs.ext4, e2fsck, resize2fs
  ruby                   # vagrant: `ruby -c` checks the Vagrantfile (VMs cannot run here)
  shellcheck             # vagrant: lints provision.sh
  podman                 # interop: a third-party container runtime on corral's CNI network (libcni)
  runc                   # bench: the peer runtime the containerizer benchmarks run side by side
  libseccomp-dev         # isolator: the task shim's default seccomp profile (libseccomp)
)

ensure_node
apt_install "${PACKAGES[@]}"
ensure_npm_deps
build

export CORRAL_TEST_ROOT="${CORRAL_TEST_ROOT:-/tmp/corral-test}"
mkdir -p "$CORRAL_TEST_ROOT"
trap '"$CORRAL_ROOT/scripts/cleanup-tests.sh"' EXIT
cd "$CORRAL_ROOT"
# The architecture's boundaries, lint, formatting and types, before any test:
# an import that climbs a layer fails here (see docs/architecture.md).
npm run --silent check
npx --no-install vitest run "$@"
