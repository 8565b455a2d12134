/*
 * Size-based log rotation, as the task writes: the live file is PATH; when a
 * write would take it past max_bytes it becomes PATH.1 (PATH.1 becomes
 * PATH.2, …) and a new PATH starts. At most max_files files exist in all,
 * the live one included; with max_files 1 the live file is truncated.
 * Rotation never loses bytes: a chunk larger than the room left is split.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim.h"

int log_open(struct rotating_log *l, const char *path, long long max_bytes, int max_files) {
  l->path = path;
  l->max_bytes = max_bytes;
  l->max_files = max_files;
  /* O_NOFOLLOW: the sandbox belongs to the task's user, who could plant a symlink where the log goes. */
  l->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (l->fd < 0) return -1;
  struct stat st;
  l->size = fstat(l->fd, &st) == 0 ? st.st_size : 0;
  return 0;
}

static void rotate(struct rotating_log *l) {
  char from[4200], to[4200];
  if (l->max_files <= 1) {
    if (ftruncate(l->fd, 0) == 0) l->size = 0;
    return;
  }
  snprintf(to, sizeof to, "%s.%d", l->path, l->max_files - 1);
  unlink(to);
  for (int i = l->max_files - 2; i >= 1; i--) {
    snprintf(from, sizeof from, "%s.%d", l->path, i);
    snprintf(to, sizeof to, "%s.%d", l->path, i + 1);
    rename(from, to);
  }
  snprintf(to, sizeof to, "%s.1", l->path);
  rename(l->path, to);
  int fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return; /* keep writing to the renamed file rather than drop output */
  close(l->fd);
  l->fd = fd;
  l->size = 0;
}

void log_write(struct rotating_log *l, const char *buf, size_t len) {
  while (len > 0 && l->fd >= 0) {
    long long room = l->max_bytes - l->size;
    if (room <= 0) {
      rotate(l);
      room = l->max_bytes - l->size;
      if (room <= 0) room = (long long)len;
    }
    size_t n = len < (size_t)room ? len : (size_t)room;
    if (write_all(l->fd, buf, n)) return;
    l->size += (long long)n;
    buf += n;
    len -= n;
  }
}
