#!/usr/bin/env bash
# Removes what tests made under $CORRAL_TEST_ROOT: the suite's scope purged
# with the node lifecycle's sweep (test/harness/sweep.ts) — recorded
# processes, processes in ct- namespaces, mounts and loop devices under the
# root, test cgroups, ct- namespaces, then the root. Touches nothing else.
set -uo pipefail
CORRAL_ROOT="${CORRAL_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"
export CORRAL_TEST_ROOT="${CORRAL_TEST_ROOT:-/tmp/corral-test}"
[ -d "$CORRAL_TEST_ROOT" ] || exit 0
cd "$CORRAL_ROOT" && exec node --import tsx test/harness/sweep.ts
