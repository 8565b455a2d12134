/*
 * corral — the CNI plugin binary a container runtime execs (CNI type "corral").
 *
 * It is deliberately thin: the node daemon holds all state and does all the
 * work, so this program only forwards the CNI_* environment and the network
 * configuration (stdin) to the daemon's root-only unix socket as one HTTP/1.1
 * request, and prints the daemon's reply. Starting Node per call costs ~50 ms
 * here; this costs ~1 ms. VERSION is answered locally so it works without the
 * daemon. Transport failures become spec error JSON (code 11 "try again later"
 * when the daemon is down, 5 for I/O trouble) so runtimes retry sensibly.
 *
 * Everything is bounded: the config (1 MiB), each env value (8 KiB), the reply
 * (4 MiB) and the time spent waiting (CORRAL_CNI_TIMEOUT seconds, default 60).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SUPPORTED_VERSIONS "[\"0.4.0\",\"1.0.0\",\"1.1.0\"]"
#define DEFAULT_SOCKET "/run/corral/cni.sock"
#define MAX_CONFIG (1024 * 1024)
#define MAX_ENV_VALUE 8192
#define MAX_HEADERS (8 * 3 * MAX_ENV_VALUE + 1024)
#define MAX_REPLY (4 * 1024 * 1024)
#define MAX_FIELD 256

static char cni_version[32] = "1.1.0";

/* Spec error JSON on stdout, exit 1. msg/details must not need JSON escaping beyond what json_puts does. */
static void json_puts(const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20) printf("\\u%04x", c);
    else putchar(c);
  }
}

static void fail(int code, const char *msg, const char *fmt, ...) {
  char details[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(details, sizeof details, fmt, ap);
  va_end(ap);
  printf("{\"cniVersion\":\"");
  json_puts(cni_version);
  printf("\",\"code\":%d,\"msg\":\"", code);
  json_puts(msg);
  printf("\",\"details\":\"");
  json_puts(details);
  printf("\"}\n");
  fflush(stdout);
  exit(1);
}

/* ---- a minimal, bounded scan for one top-level string field of a JSON object ---- */

static size_t skip_ws(const char *b, size_t n, size_t i) {
  while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r')) i++;
  return i;
}

/* i points at '"'; returns the index after the closing quote, or n when unterminated. */
static size_t skip_string(const char *b, size_t n, size_t i) {
  for (i++; i < n; i++) {
    if (b[i] == '\\') i++;
    else if (b[i] == '"') return i + 1;
  }
  return n;
}

/* Skips one JSON value of any kind (strings honoured inside nesting). */
static size_t skip_value(const char *b, size_t n, size_t i) {
  int depth = 0;
  while (i < n) {
    char c = b[i];
    if (c == '"') { i = skip_string(b, n, i); if (depth == 0) return i; continue; }
    if (c == '{' || c == '[') depth++;
    else if (c == '}' || c == ']') { if (depth == 0) return i; depth--; if (depth == 0) return i + 1; }
    else if (c == ',' && depth == 0) return i;
    i++;
  }
  return n;
}

/* Copies the value of top-level key `key` into out if it is a plain string (no escapes) shorter than outlen. */
static int top_level_string(const char *b, size_t n, const char *key, char *out, size_t outlen) {
  size_t klen = strlen(key), i = skip_ws(b, n, 0);
  if (i >= n || b[i] != '{') return 0;
  i++;
  while (i < n) {
    i = skip_ws(b, n, i);
    if (i >= n || b[i] != '"') return 0;
    size_t kstart = i + 1, kend = skip_string(b, n, i);
    if (kend >= n) return 0;
    int match = (kend - 1 - kstart == klen) && memcmp(b + kstart, key, klen) == 0;
    i = skip_ws(b, n, kend);
    if (i >= n || b[i] != ':') return 0;
    i = skip_ws(b, n, i + 1);
    if (match && i < n && b[i] == '"') {
      size_t vstart = i + 1, vend = skip_string(b, n, i);
      if (vend > n || vend == n) return 0;
      size_t vlen = vend - 1 - vstart;
      if (vlen == 0 || vlen >= outlen || memchr(b + vstart, '\\', vlen)) return 0;
      memcpy(out, b + vstart, vlen);
      out[vlen] = 0;
      return 1;
    }
    i = skip_ws(b, n, skip_value(b, n, i));
    if (i < n && b[i] == ',') { i++; continue; }
    return 0;
  }
  return 0;
}

/* ---- request building ---- */

struct buf { char *p; size_t len, cap; };

static void buf_add(struct buf *b, const char *s, size_t n) {
  if (b->len + n > b->cap) fail(5, "I/O error", "request larger than %zu bytes", b->cap);
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

/* Header values are percent-encoded outside printable ASCII so any env value crosses HTTP intact. */
static void add_env_header(struct buf *b, const char *header, const char *env) {
  const char *v = getenv(env);
  static const char hex[] = "0123456789ABCDEF";
  if (!v) return;
  size_t len = strlen(v);
  if (len > MAX_ENV_VALUE) fail(4, "invalid environment", "%s is longer than %d bytes", env, MAX_ENV_VALUE);
  buf_str(b, header);
  buf_str(b, ": ");
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c >= 0x21 && c <= 0x7e && c != '%') buf_add(b, (const char *)&c, 1);
    else { char e[3] = {'%', hex[c >> 4], hex[c & 15]}; buf_add(b, e, 3); }
  }
  buf_str(b, "\r\n");
}

static char *read_stdin(size_t *outlen) {
  char *data = malloc(MAX_CONFIG + 1);
  size_t n = 0;
  if (!data) fail(5, "I/O error", "out of memory");
  for (;;) {
    ssize_t r = read(0, data + n, MAX_CONFIG + 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(5, "I/O error", "reading the network configuration from stdin: %s", strerror(errno));
    if (r == 0) break;
    n += (size_t)r;
    if (n > MAX_CONFIG) fail(7, "invalid network configuration", "network configuration larger than %d bytes", MAX_CONFIG);
  }
  *outlen = n;
  return data;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for fd to be ready for `events` until the deadline; fails with code 11 on timeout. */
static void wait_fd(int fd, short events, long long deadline, const char *sock) {
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) fail(11, "try again later", "no reply from the corral node daemon at %s in time", sock);
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
    if (r > 0) return;
    if (r < 0 && errno != EINTR) fail(5, "I/O error", "poll on %s: %s", sock, strerror(errno));
  }
}

int main(void) {
  const char *cmd = getenv("CNI_COMMAND");
  if (cmd && strcmp(cmd, "VERSION") == 0) {
    printf("{\"cniVersion\":\"1.1.0\",\"supportedVersions\":" SUPPORTED_VERSIONS "}\n");
    return 0;
  }

  size_t config_len = 0;
  char *config = read_stdin(&config_len);
  char version[32];
  if (top_level_string(config, config_len, "cniVersion", version, sizeof version)) memcpy(cni_version, version, sizeof version);
  if (!cmd || !*cmd) fail(4, "invalid environment", "CNI_COMMAND is not set");

  char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
  if (!top_level_string(config, config_len, "daemonSocket", sock, sizeof sock)) {
    const char *env = getenv("CORRAL_CNI_SOCKET");
    const char *path = env && *env ? env : DEFAULT_SOCKET;
    if (strlen(path) >= sizeof sock) fail(7, "invalid network configuration", "daemon socket path is too long");
    strcpy(sock, path);
  }
  long timeout_s = 60;
  const char *t = getenv("CORRAL_CNI_TIMEOUT");
  if (t && *t) {
    char *end;
    timeout_s = strtol(t, &end, 10);
    if (*end || timeout_s < 1 || timeout_s > 3600) fail(4, "invalid environment", "CORRAL_CNI_TIMEOUT must be 1..3600 seconds");
  }
  long long deadline = now_ms() + timeout_s * 1000;

  struct buf req = {malloc(MAX_HEADERS), 0, MAX_HEADERS};
  if (!req.p) fail(5, "I/O error", "out of memory");
  char line[128];
  buf_str(&req, "POST /v1/cni HTTP/1.1\r\nHost: corral-cni\r\nConnection: close\r\nContent-Type: application/json\r\n");
  add_env_header(&req, "X-Cni-Command", "CNI_COMMAND");
  add_env_header(&req, "X-Cni-Containerid", "CNI_CONTAINERID");
  add_env_header(&req, "X-Cni-Netns", "CNI_NETNS");
  add_env_header(&req, "X-Cni-Ifname", "CNI_IFNAME");
  add_env_header(&req, "X-Cni-Args", "CNI_ARGS");
  add_env_header(&req, "X-Cni-Path", "CNI_PATH");
  snprintf(line, sizeof line, "Content-Length: %zu\r\n\r\n", config_len);
  buf_str(&req, line);

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) fail(5, "I/O error", "socket: %s", strerror(errno));
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strcpy(addr.sun_path, sock);
  while (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    if (errno == EINTR) continue;
    if (errno == EAGAIN) { /* listen backlog full: the daemon is busy, wait a little */
      wait_fd(fd, POLLOUT, deadline, sock);
      usleep(1000);
      continue;
    }
    if (errno == ENOENT || errno == ECONNREFUSED)
      fail(11, "try again later", "the corral node daemon is not running (%s: %s)", sock, strerror(errno));
    fail(5, "I/O error", "connect %s: %s", sock, strerror(errno));
  }

  const char *parts[2] = {req.p, config};
  size_t lens[2] = {req.len, config_len};
  /* A send error is not final: the daemon may have answered before reading everything; read what it said. */
  for (int k = 0, broken = 0; k < 2 && !broken; k++) {
    size_t off = 0;
    while (off < lens[k]) {
      ssize_t w = send(fd, parts[k] + off, lens[k] - off, MSG_NOSIGNAL);
      if (w < 0 && (errno == EAGAIN || errno == EINTR)) { wait_fd(fd, POLLOUT, deadline, sock); continue; }
      if (w < 0) { broken = 1; break; }
      off += (size_t)w;
    }
  }

  char *reply = malloc(MAX_REPLY + 1);
  size_t rlen = 0;
  if (!reply) fail(5, "I/O error", "out of memory");
  for (;;) {
    ssize_t r = recv(fd, reply + rlen, MAX_REPLY - rlen, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) { wait_fd(fd, POLLIN, deadline, sock); continue; }
    if (r < 0 && rlen == 0) fail(11, "try again later", "the corral node daemon closed the connection: %s", strerror(errno));
    if (r < 0) fail(5, "I/O error", "reading the daemon's reply: %s", strerror(errno));
    if (r == 0) break;
    rlen += (size_t)r;
    if (rlen >= MAX_REPLY) fail(5, "I/O error", "reply of the daemon larger than %d bytes", MAX_REPLY);
  }
  close(fd);
  reply[rlen] = 0;

  int status = 0;
  if (rlen < 12 || sscanf(reply, "HTTP/1.%*1d %3d", &status) != 1)
    fail(11, "try again later", "the corral node daemon closed the connection without a reply");
  char *body = strstr(reply, "\r\n\r\n");
  if (!body) fail(5, "I/O error", "malformed reply from the daemon");
  body += 4;
  size_t blen = rlen - (size_t)(body - reply);
  if (blen > 0 && fwrite(body, 1, blen, stdout) != blen) return 1;
  if (blen > 0 && body[blen - 1] != '\n') putchar('\n');
  fflush(stdout);
  return status >= 200 && status < 300 ? 0 : 1;
}
