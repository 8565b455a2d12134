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
)

ensure_node
apt_install "${PACKAGES[@]}"
ensure_npm_deps
build

export CORRAL_TEST_ROOT="${CORRAL_TEST_ROOT:-/tmp/corral-test}"
mkdir -p "$CORRAL_TEST_ROOT"
trap '"$CORRAL_ROOT/scripts/cleanup-tests.sh"' EXIT
cd "$CORRAL_ROOT"
npx --no-install vitest run "$@"
