/*
 * Small helpers: error text, whole writes, files, mkdir -p, a process's start
 * time (to tell a live supervisor from a later process with the same pid),
 * JSON string escaping and reply lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim.h"

void fmt_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = write_all(fd, text, strlen(text));
  int saved = errno;
  close(fd);
  errno = saved;
  return rc;
}

int mkdir_p(const char *path, mode_t mode) {
  /* Usually only the last component is missing: one mkdir instead of one per component. */
  if (mkdir(path, mode) == 0 || errno == EEXIST) return 0;
  if (errno != ENOENT) return -1;
  char buf[4096];
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof buf) return errno = ENAMETOOLONG, -1;
  memcpy(buf, path, len + 1);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, mode) && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(buf, mode) && errno != EEXIST) return -1;
  return 0;
}

/* Field 22 of /proc/PID/stat (clock ticks since boot); 0 when unknown. */
unsigned long long proc_start_time(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return 0;
  /* After ") " come fields 3..; start time is field 22, i.e. the 20th after the ')'. */
  int fieldno = 2;
  for (p++; *p && fieldno < 22; p++)
    if (*p == ' ') fieldno++;
  return strtoull(p, NULL, 10);
}

void json_string(char *out, size_t outlen, const char *s) {
  size_t o = 0;
  if (outlen < 3) return;
  out[o++] = '"';
  for (; *s && o + 8 < outlen; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      out[o++] = '\\';
      out[o++] = (char)c;
    } else if (c < 0x20) {
      o += (size_t)snprintf(out + o, outlen - o, "\\u%04x", c);
    } else {
      out[o++] = (char)c;
    }
  }
  out[o++] = '"';
  out[o] = 0;
}

/*
 * One reply line, written with a single write(2): lines shorter than
 * PIPE_BUF are never interleaved with other supervisors' replies on the
 * shared pipe. Newlines in messages become spaces.
 */
void reply_line(int fd, const char *req, const char *fmt, ...) {
  char line[MSG_MAX + 128];
  int n = snprintf(line, sizeof line, "%s ", req ? req : "-");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  for (char *p = line; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  size_t len = strlen(line);
  line[len++] = '\n';
  (void)write_all(fd, line, len);
}
