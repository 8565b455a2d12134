#!/usr/bin/env bash
# Removes what tests made under $CORRAL_TEST_ROOT, in the safe order:
# processes they recorded, mounts, loop devices, then network namespaces
# named with the test prefix. Touches nothing else.
set -uo pipefail
ROOT="${CORRAL_TEST_ROOT:-/tmp/corral-test}"
[ -d "$ROOT" ] || exit 0

# Processes: each harness writes <name>.pid under $ROOT/pids; end only those, by PID.
for f in "$ROOT"/pids/*.pid; do
  [ -f "$f" ] || continue
  pid=$(cat "$f" 2>/dev/null || true)
  if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)
    [ "$state" != Z ] && kill -TERM "$pid" 2>/dev/null
  fi
done
sleep 1
for f in "$ROOT"/pids/*.pid; do
  [ -f "$f" ] || continue
  pid=$(cat "$f" 2>/dev/null || true)
  [ -n "$pid" ] && [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null
  rm -f "$f"
done

# Processes inside test namespaces (a lab host's daemons, rbd-fuse helpers, exabgp) go before any
# unmount: an ext4 over rbd-fuse cannot be unmounted while rbd-fuse lives but Ceph is gone.
ip netns list 2>/dev/null | awk '{print $1}' | grep '^ct-' | while read -r ns; do
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
done
sleep 0.2

# Mounts under the test root, deepest first.
grep -F " $ROOT" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do
  umount -l "$m" 2>/dev/null
done

# Loop devices backed by files under the test root.
losetup -a 2>/dev/null | grep -F "$ROOT" | cut -d: -f1 | while read -r dev; do
  losetup -d "$dev" 2>/dev/null
done

# Cgroups of the isolator tests (corral-test-…) and of lab hosts in tests (ct-…): kill their members,
# then remove them (leaves first).
for root in /sys/fs/cgroup/*/corral-test-* /sys/fs/cgroup/corral-test-* /sys/fs/cgroup/*/ct-* /sys/fs/cgroup/ct-*; do
  [ -d "$root" ] || continue
  for cg in "$root"/*/; do [ -f "$cg/cgroup.procs" ] && xargs -r kill -KILL <"$cg/cgroup.procs" 2>/dev/null; done
  sleep 0.2
  for cg in "$root"/*/; do [ -d "$cg" ] && rmdir "$cg" 2>/dev/null; done
  rmdir "$root" 2>/dev/null
done

# Network namespaces tests created (prefix "ct-").
ip netns list 2>/dev/null | awk '{print $1}' | grep '^ct-' | while read -r ns; do
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
  ip netns delete "$ns" 2>/dev/null
done

rm -rf "$ROOT"
exit 0
