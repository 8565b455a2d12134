/*
 * corral — the CNI plugin binary a container runtime execs (CNI type "corral").
 *
 * It is deliberately thin: the node daemon holds all state and does all the
 * work, so this program only forwards the CNI_* environment and the network
 * configuration (stdin) to the daemon's root-only unix socket as one HTTP/1.1
 * request, and prints the daemon's reply. Starting Node per call costs ~50 ms
 * here; this costs ~1 ms. VERSION is answered locally so it works without the
 * daemon. What can be judged without the daemon is judged here, before any
 * connection: the environment (code 4), whether the config is JSON at all
 * (6), its cniVersion (7 when missing, 1 when not one we speak), name, type
 * and daemonSocket (7); the daemon judges the rest of the config. So code 11 "try again later" means exactly that the
 * daemon could not be reached for a request that may well succeed later; a
 * runtime retries 11, and must not retry a config that can never work.
 * Other transport failures are 5 (I/O).
 *
 * Everything is bounded: the config (1 MiB), each env value (8 KiB), the reply
 * (4 MiB) and the time spent waiting (CORRAL_CNI_TIMEOUT seconds, default 60).
 */
#include "conf-json.h"

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
  if (len > MAX_ENV_VALUE) fail(4, "invalid environment variables", "%s is longer than %d bytes", env, MAX_ENV_VALUE);
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

/* ---- the environment, checked as the daemon checks it ---- */

static const char *const COMMANDS[] = {"ADD", "DEL", "CHECK", "GC", "STATUS"};

static void bad_env(const char *fmt, const char *a) { fail(4, "invalid environment variables", fmt, a); }

static const char *required(const char *name) {
  const char *v = getenv(name);
  if (!v || !*v) bad_env("%s is not set", name);
  return v;
}

/* CNI_CONTAINERID, CNI_IFNAME, CNI_NETNS and CNI_ARGS for commands that name a container (plugins/…/cni/request.ts). */
static void check_env(const char *cmd) {
  int known = 0;
  for (size_t k = 0; k < sizeof COMMANDS / sizeof *COMMANDS; k++) known |= strcmp(cmd, COMMANDS[k]) == 0;
  if (!known) bad_env("CNI_COMMAND \"%s\" is not one of ADD, DEL, CHECK, VERSION, GC, STATUS", cmd);
  if (strcmp(cmd, "GC") == 0 || strcmp(cmd, "STATUS") == 0) return;
  const char *id = required("CNI_CONTAINERID");
  int id_ok = strlen(id) <= 1024 && ((id[0] >= 'a' && id[0] <= 'z') || (id[0] >= 'A' && id[0] <= 'Z') || is_digit(id[0]));
  for (const char *p = id; id_ok && *p; p++) id_ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || is_digit(*p) || *p == '_' || *p == '.' || *p == '-';
  if (!id_ok) bad_env("CNI_CONTAINERID \"%s\" may hold only letters, digits, \"_\", \".\" and \"-\" and must start with a letter or digit", id);
  const char *ifname = required("CNI_IFNAME");
  if (strlen(ifname) > 15 || strcmp(ifname, ".") == 0 || strcmp(ifname, "..") == 0 || strpbrk(ifname, "/: \t\n\v\f\r"))
    bad_env("CNI_IFNAME \"%s\" is not a valid interface name", ifname);
  const char *netns = getenv("CNI_NETNS");
  if (strcmp(cmd, "DEL") != 0) netns = required("CNI_NETNS");
  if (netns && *netns && (netns[0] != '/' || strlen(netns) > 4096)) bad_env("CNI_NETNS \"%s\" is not an absolute path", netns);
  const char *args = getenv("CNI_ARGS");
  for (const char *p = args; p && *p;) {
    const char *end = strchr(p, ';');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    if (len > 0 && (!eq || eq == p)) {
      char entry[128];
      snprintf(entry, sizeof entry, "%.*s", (int)(len < sizeof entry ? len : sizeof entry - 1), p);
      bad_env("CNI_ARGS entry \"%s\" is not KEY=VALUE", entry);
    }
    p += len + (end ? 1 : 0);
  }
}

static const char *const VERSIONS[] = {"0.4.0", "1.0.0", "1.1.0"};

static int supported_version(const char *v) {
  for (size_t k = 0; k < sizeof VERSIONS / sizeof *VERSIONS; k++)
    if (strcmp(v, VERSIONS[k]) == 0) return 1;
  return 0;
}

int main(void) {
  const char *cmd = getenv("CNI_COMMAND");
  if (cmd && strcmp(cmd, "VERSION") == 0) {
    printf("{\"cniVersion\":\"1.1.0\",\"supportedVersions\":" SUPPORTED_VERSIONS "}\n");
    return 0;
  }

  size_t config_len = 0;
  char *config = read_stdin(&config_len);
  char why[160];
  int valid = json_valid(config, config_len, why, sizeof why);
  int object = valid && config[skip_ws(config, config_len, 0)] == '{';
  struct conf_fields f;
  memset(&f, 0, sizeof f);
  if (object) read_fields(config, config_len, &f);
  /* Errors answer in the config's version when it is one we speak, as the daemon does. */
  if (f.version_kind == 1 && supported_version(f.version)) snprintf(cni_version, sizeof cni_version, "%s", f.version);

  if (!cmd || !*cmd) fail(4, "invalid environment variables", "CNI_COMMAND is not set");
  check_env(cmd);

  if (!valid) fail(6, "failed to decode the network configuration", "%s", why);
  if (!object) fail(6, "failed to decode the network configuration", "expected a JSON object");
  if (f.version_kind == 0 || f.version_kind == 2) fail(7, "invalid network configuration", "cniVersion is missing");
  if (f.version_kind == 3 || !supported_version(f.version))
    fail(1, "incompatible CNI version", "config version %s; corral supports 0.4.0, 1.0.0 and 1.1.0", f.version_kind == 3 ? "(unreadable)" : f.version);
  if ((strcmp(cmd, "GC") == 0 || strcmp(cmd, "STATUS") == 0) && strcmp(f.version, "1.1.0") != 0)
    fail(1, "incompatible CNI version", "%s needs cniVersion 1.1.0, the config says %s", cmd, f.version);

  /* name and type as the daemon requires them (request.ts); a runtime always sets both. */
  int name_ok = f.name_kind == 1 && (is_digit(f.name[0]) || ((f.name[0] | 0x20) >= 'a' && (f.name[0] | 0x20) <= 'z'));
  for (const char *p = f.name; name_ok && *p; p++) name_ok = is_digit(*p) || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') || *p == '_' || *p == '.' || *p == '-';
  if (!name_ok && f.name_kind != 3) fail(7, "invalid network configuration", "name must be letters, digits, \"_\", \".\" and \"-\", starting with a letter or digit");
  if (f.type_kind != 1 || strcmp(f.type, "corral") != 0) fail(7, "invalid network configuration", "type must be \"corral\"");

  char sock[sizeof f.socket];
  if (f.socket_kind == 2) fail(7, "invalid network configuration", "daemonSocket must be a string");
  if (f.socket_kind == 3) fail(7, "invalid network configuration", "daemonSocket is longer than %zu bytes or holds a NUL", sizeof sock - 1);
  if (f.socket_kind == 1) {
    if (f.socket[0] != '/') fail(7, "invalid network configuration", "daemonSocket \"%s\" is not an absolute path", f.socket);
    strcpy(sock, f.socket);
  } else {
    const char *env = getenv("CORRAL_CNI_SOCKET");
    const char *path = env && *env ? env : DEFAULT_SOCKET;
    if (path[0] != '/' || strlen(path) >= sizeof sock) fail(4, "invalid environment variables", "CORRAL_CNI_SOCKET must be an absolute path shorter than %zu bytes", sizeof sock);
    strcpy(sock, path);
  }
  long timeout_s = 60;
  const char *t = getenv("CORRAL_CNI_TIMEOUT");
  if (t && *t) {
    char *end;
    timeout_s = strtol(t, &end, 10);
    if (*end || timeout_s < 1 || timeout_s > 3600) fail(4, "invalid environment variables", "CORRAL_CNI_TIMEOUT must be 1..3600 seconds");
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
