/*
 * Network namespaces as files: a new namespace with its loopback up, bound
 * onto PATH so it lives on without any process in it (CNI wires it before
 * the task starts; the task joins it with setns). Deleting unmounts and
 * removes the file; the kernel frees the namespace when the last process in
 * it is gone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shim.h"

static int loopback_up(char *err, size_t errlen) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fmt_err(err, errlen, "socket: %s", strerror(errno)), -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
  if (rc == 0) {
    ifr.ifr_flags |= IFF_UP;
    rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
  }
  if (rc) fmt_err(err, errlen, "bring lo up: %s", strerror(errno));
  close(fd);
  return rc;
}

/*
 * As `ip netns add` does for /run/netns: the directory holding namespace
 * files is made a shared mount (of itself, if it is not a mount point), so a
 * file bound into it later also appears in mount namespaces made earlier as
 * slaves of the host's (a CNI daemon started with `ip netns exec`, say).
 */
static int shared_parent(const char *path, char *err, size_t errlen) {
  char dir[4096];
  if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) return fmt_err(err, errlen, "path too long"), -1;
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir) return 0;
  *slash = 0;
  if (mount("", dir, "none", MS_SHARED | MS_REC, NULL) == 0) return 0;
  if (errno != EINVAL) return fmt_err(err, errlen, "make %s shared: %s", dir, strerror(errno)), -1;
  if (mount(dir, dir, "none", MS_BIND | MS_REC, NULL) || mount("", dir, "none", MS_SHARED | MS_REC, NULL))
    return fmt_err(err, errlen, "bind %s onto itself as a shared mount: %s", dir, strerror(errno)), -1;
  return 0;
}

/* Runs in a child of the launcher: it moves itself into the new namespace. */
int create_netns(const char *path, char *err, size_t errlen) {
  if (shared_parent(path, err, errlen)) return -1;
  int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (fd < 0) return fmt_err(err, errlen, "create %s: %s", path, strerror(errno)), -1;
  close(fd);
  if (unshare(CLONE_NEWNET)) {
    fmt_err(err, errlen, "unshare(CLONE_NEWNET): %s", strerror(errno));
    unlink(path);
    return -1;
  }
  if (loopback_up(err, errlen)) {
    unlink(path);
    return -1;
  }
  if (mount("/proc/self/ns/net", path, NULL, MS_BIND, NULL)) {
    fmt_err(err, errlen, "bind the namespace onto %s: %s", path, strerror(errno));
    unlink(path);
    return -1;
  }
  return 0;
}

int delete_netns(const char *path, char *err, size_t errlen) {
  if (umount2(path, MNT_DETACH) && errno != EINVAL && errno != ENOENT)
    return fmt_err(err, errlen, "unmount %s: %s", path, strerror(errno)), -1;
  if (unlink(path) && errno != ENOENT) return fmt_err(err, errlen, "remove %s: %s", path, strerror(errno)), -1;
  return 0;
}
