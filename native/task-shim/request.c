/*
 * Turning one request (key=value fields) into a launch_spec. The TypeScript
 * side validates everything it can (paths, names, sizes); this only checks
 * what C would otherwise trip on, and names the field it refuses.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

const char *field(const struct request *r, const char *key) {
  for (int i = 0; i < r->count; i++)
    if (strcmp(r->fields[i].key, key) == 0) return r->fields[i].value;
  return NULL;
}

static int parse_ll(const char *v, long long *out) {
  char *end;
  errno = 0;
  long long n = strtoll(v, &end, 10);
  if (errno || *end || end == v || n < 0) return -1;
  *out = n;
  return 0;
}

/* "ro\tSRC\tDST" or "rw\tSRC\tDST" */
static int parse_bind(char *v, struct bind *b) {
  char *src = strchr(v, '\t');
  if (!src) return -1;
  *src++ = 0;
  char *dst = strchr(src, '\t');
  if (!dst) return -1;
  *dst++ = 0;
  if (strcmp(v, "ro") == 0) b->readonly = 1;
  else if (strcmp(v, "rw") == 0) b->readonly = 0;
  else return -1;
  if (src[0] != '/' || dst[0] != '/') return -1;
  b->source = src;
  b->target = dst;
  return 0;
}

static int parse_hex(const char *v, unsigned long long *out) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 16);
  if (errno || *end || end == v || v[0] == '-') return -1;
  *out = n;
  return 0;
}

static int parse_namespaces(const char *v, struct launch_spec *s) {
  char buf[128];
  if (strlen(v) >= sizeof buf) return -1;
  strcpy(buf, v);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (strcmp(tok, "mnt") == 0) s->ns_mnt = 1;
    else if (strcmp(tok, "pid") == 0) s->ns_pid = 1;
    else if (strcmp(tok, "uts") == 0) s->ns_uts = 1;
    else if (strcmp(tok, "ipc") == 0) s->ns_ipc = 1;
    else return -1;
  }
  return 0;
}

static int parse_groups(const char *v, struct launch_spec *s) {
  char buf[1024];
  if (strlen(v) >= sizeof buf) return -1;
  strcpy(buf, v);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    long long g;
    if (s->ngroups >= 64 || parse_ll(tok, &g)) return -1;
    s->groups[s->ngroups++] = (gid_t)g;
  }
  return 0;
}

/* A field of the process and its identity (arg, env, cwd, uid, gid, groups, capability masks), shared by
   launch and exec: 1 when `k` is one (parsed), 0 when not, -1 on a bad value. */
static int parse_process(const char *k, const char *v, struct launch_spec *s, char *err, size_t errlen) {
  long long n;
  if (strcmp(k, "cwd") == 0) s->cwd = v;
  else if (strcmp(k, "arg") == 0) {
    if (s->argc >= MAX_ITEMS) return fmt_err(err, errlen, "too many \"%s\" fields", k), -1;
    s->argv[s->argc++] = v;
  } else if (strcmp(k, "env") == 0) {
    if (s->envc >= MAX_ITEMS) return fmt_err(err, errlen, "too many \"%s\" fields", k), -1;
    s->envp[s->envc++] = v;
  } else if (strcmp(k, "uid") == 0) {
    if (parse_ll(v, &n)) return fmt_err(err, errlen, "bad uid"), -1;
    s->uid = (uid_t)n;
    s->has_user = 1;
  } else if (strcmp(k, "gid") == 0) {
    if (parse_ll(v, &n)) return fmt_err(err, errlen, "bad gid"), -1;
    s->gid = (gid_t)n;
  } else if (strcmp(k, "groups") == 0) {
    if (parse_groups(v, s)) return fmt_err(err, errlen, "bad groups"), -1;
  } else if (strcmp(k, "caps_effective") == 0) {
    if (parse_hex(v, &s->cap_effective)) return fmt_err(err, errlen, "bad caps_effective (hex mask)"), -1;
    s->has_caps = 1;
  } else if (strcmp(k, "caps_bounding") == 0) {
    if (parse_hex(v, &s->cap_bounding)) return fmt_err(err, errlen, "bad caps_bounding (hex mask)"), -1;
    s->has_caps = 1;
  } else if (strcmp(k, "seccomp") == 0) {
    if (strcmp(v, "default") == 0) s->seccomp = 1;
    else if (strcmp(v, "unconfined") == 0) s->seccomp = 0;
    else return fmt_err(err, errlen, "bad seccomp \"%s\" (default, unconfined)", v), -1;
  } else return 0;
  return 1;
}

int parse_launch(const struct request *r, struct launch_spec *s, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  s->seccomp = 1;
  s->log_max_bytes = 10 * 1024 * 1024;
  s->log_max_files = 5;
  for (int i = 0; i < r->count; i++) {
    const char *k = r->fields[i].key;
    char *v = (char *)r->fields[i].value;
    long long n;
    int handled;
    if (strcmp(k, "op") == 0) continue;
    else if (strcmp(k, "req") == 0) s->req = v;
    else if (strcmp(k, "id") == 0) s->id = v;
    else if (strcmp(k, "sandbox") == 0) s->sandbox = v;
    else if (strcmp(k, "exec") == 0) s->exec_file = v;
    else if ((handled = parse_process(k, v, s, err, errlen)) != 0) {
      if (handled < 0) return -1;
    } else if (strcmp(k, "cgroup") == 0) {
      if (s->ncgroups >= 16) return fmt_err(err, errlen, "too many \"%s\" fields", k), -1;
      s->cgroups[s->ncgroups++] = v;
    } else if (strcmp(k, "mkdir") == 0) {
      if (s->nmkdirs >= 16) return fmt_err(err, errlen, "too many \"%s\" fields", k), -1;
      s->mkdirs[s->nmkdirs++] = v;
    } else if (strcmp(k, "write") == 0) {
      char *tab = strchr(v, '\t');
      if (!tab || v[0] != '/') return fmt_err(err, errlen, "bad write field (/FILE<TAB>VALUE)"), -1;
      if (s->nwrites >= 64) return fmt_err(err, errlen, "too many \"%s\" fields", k), -1;
      *tab = 0;
      s->write_files[s->nwrites] = v;
      s->write_values[s->nwrites++] = tab + 1;
    } else if (strcmp(k, "supervisor_file") == 0) s->supervisor_file = v;
    else if (strcmp(k, "oom_file") == 0) s->oom_file = v;
    else if (strcmp(k, "ns") == 0) {
      if (parse_namespaces(v, s)) return fmt_err(err, errlen, "bad ns \"%s\" (mnt, pid, uts, ipc)", v), -1;
    } else if (strcmp(k, "netns") == 0) s->netns = v;
    else if (strcmp(k, "hostname") == 0) s->hostname = v;
    else if (strcmp(k, "rootfs") == 0) s->rootfs = v;
    else if (strcmp(k, "rootfs_state") == 0) s->rootfs_state = v;
    else if (strcmp(k, "sandbox_target") == 0) s->sandbox_target = v;
    else if (strcmp(k, "bind") == 0) {
      if (s->nbinds >= MAX_BINDS) return fmt_err(err, errlen, "too many \"%s\" fields", k), -1;
      if (parse_bind(v, &s->binds[s->nbinds])) return fmt_err(err, errlen, "bad bind field (MODE<TAB>/SOURCE<TAB>/TARGET)"), -1;
      s->nbinds++;
    } else if (strcmp(k, "mask") == 0) {
      if (s->nmasks >= 256) return fmt_err(err, errlen, "too many \"%s\" fields", k), -1;
      s->masks[s->nmasks++] = v;
    } else if (strcmp(k, "stdout") == 0) s->stdout_path = v;
    else if (strcmp(k, "stderr") == 0) s->stderr_path = v;
    else if (strcmp(k, "log_max_bytes") == 0) {
      if (parse_ll(v, &n) || n < 1) return fmt_err(err, errlen, "bad log_max_bytes"), -1;
      s->log_max_bytes = n;
    } else if (strcmp(k, "log_max_files") == 0) {
      if (parse_ll(v, &n) || n < 1 || n > 1000) return fmt_err(err, errlen, "bad log_max_files"), -1;
      s->log_max_files = (int)n;
    } else if (strcmp(k, "status") == 0) s->status_path = v;
    else if (strcmp(k, "exit_link") == 0) s->exit_link = v;
    else return fmt_err(err, errlen, "unknown field \"%s\"", k), -1;
  }
  if (!s->id || !s->sandbox || !s->status_path || !s->stdout_path || !s->stderr_path || s->argc == 0)
    return fmt_err(err, errlen, "launch needs id, sandbox, status, stdout, stderr and at least one arg"), -1;
  if (!s->exec_file) s->exec_file = s->argv[0];
  if (!s->cwd) s->cwd = s->sandbox;
  if (s->rootfs && (!s->rootfs_state || !s->ns_mnt)) return fmt_err(err, errlen, "rootfs needs rootfs_state and a mount namespace"), -1;
  if ((s->nbinds || s->nmasks) && !s->ns_mnt) return fmt_err(err, errlen, "bind and mask need a mount namespace"), -1;
  return 0;
}

/* An `exec` request: pid (a process of the container), arg…, env…, cwd, the identity fields of a launch, timeout_ms. */
int parse_exec(const struct request *r, struct launch_spec *s, pid_t *target, long long *timeout_ms, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  s->seccomp = 1;
  *target = 0;
  *timeout_ms = 20000;
  for (int i = 0; i < r->count; i++) {
    const char *k = r->fields[i].key;
    const char *v = r->fields[i].value;
    long long n;
    int handled;
    if (strcmp(k, "op") == 0) continue;
    else if (strcmp(k, "req") == 0) s->req = v;
    else if (strcmp(k, "pid") == 0) {
      if (parse_ll(v, &n) || n < 1) return fmt_err(err, errlen, "bad pid"), -1;
      *target = (pid_t)n;
    } else if (strcmp(k, "timeout_ms") == 0) {
      if (parse_ll(v, &n) || n < 1) return fmt_err(err, errlen, "bad timeout_ms"), -1;
      *timeout_ms = n;
    } else if ((handled = parse_process(k, v, s, err, errlen)) != 0) {
      if (handled < 0) return -1;
    } else return fmt_err(err, errlen, "unknown field \"%s\"", k), -1;
  }
  if (!*target || s->argc == 0) return fmt_err(err, errlen, "exec needs pid and at least one arg"), -1;
  s->exec_file = s->argv[0];
  return 0;
}
