/*
 * corral-task-shim: shared declarations.
 *
 * One binary, two roles. `corral-task-shim serve` is the resident launcher the
 * native containerizer starts once: it reads launch requests on stdin and
 * forks one supervisor per task (fork from a small C process costs far less
 * than a Node spawn, which is what makes 1,000 launches in a few seconds
 * possible). A supervisor detaches (setsid), starts the task in its cgroups
 * and namespaces, answers the request itself on the launcher's stdout, then
 * captures and rotates the task's logs, waits for it and writes its
 * termination (exit status, signal, OOM kills) to a file. Supervisors outlive
 * the launcher and the agent, so tasks survive an agent restart.
 */
#ifndef CORRAL_TASK_SHIM_H
#define CORRAL_TASK_SHIM_H

#include <stddef.h>
#include <sys/types.h>

#define MAX_ITEMS 1024
#define MAX_BINDS 128
#define MSG_MAX 1024

/* One request: NUL-terminated "key=value" fields; an empty field ends it. */
struct field {
  const char *key;
  const char *value;
};

struct request {
  struct field fields[4 * MAX_ITEMS];
  int count;
};

/* A bind mount into the task's mount namespace. */
struct bind {
  int readonly;
  const char *source;
  const char *target;
};

struct launch_spec {
  const char *req;
  const char *id;
  const char *sandbox;
  const char *cwd;
  const char *exec_file;
  const char *argv[MAX_ITEMS + 1];
  int argc;
  const char *envp[MAX_ITEMS + 1];
  int envc;
  const char *cgroups[16];
  int ncgroups;
  /* Cgroup set-up done by the supervisor: directories, then "FILE\tVALUE" control writes. */
  const char *mkdirs[16];
  int nmkdirs;
  const char *write_files[64];
  const char *write_values[64];
  int nwrites;
  const char *oom_file;
  int ns_mnt, ns_pid, ns_uts, ns_ipc;
  const char *netns;
  const char *hostname;
  /* Root filesystem: overlay of `rootfs` (read-only image) under `rootfs_state` (upper, work, merged). */
  const char *rootfs;
  const char *rootfs_state;
  const char *sandbox_target;
  struct bind binds[MAX_BINDS];
  int nbinds;
  const char *masks[256];
  int nmasks;
  const char *stdout_path, *stderr_path;
  long long log_max_bytes;
  int log_max_files;
  const char *status_path;
  const char *exit_link;
  /* "SUPERVISOR_PID SUPERVISOR_START TASK_PID TASK_START", written once the task runs. */
  const char *supervisor_file;
  int has_user;
  uid_t uid;
  gid_t gid;
  gid_t groups[64];
  int ngroups;
  /* Capability sets as bit masks (bit N = capability N); only applied when has_caps. */
  int has_caps;
  unsigned long long cap_effective, cap_bounding;
  /* Load the default seccomp profile (security.c) before exec. */
  int seccomp;
};

/* request.c */
int parse_launch(const struct request *r, struct launch_spec *s, char *err, size_t errlen);
const char *field(const struct request *r, const char *key);

/* supervisor.c */
void run_supervisor(struct launch_spec *s, int reply_fd) __attribute__((noreturn));

/* container.c: runs in the child the supervisor forks; never returns. */
struct child_pipes {
  int err_w;   /* CLOEXEC: setup and exec errors for the supervisor */
  int out_w;   /* task stdout */
  int errlog_w; /* task stderr */
  int relay_w; /* pid-namespace init -> supervisor: the task's wait status */
};
void run_container(const struct launch_spec *s, const struct child_pipes *p) __attribute__((noreturn));

/* security.c */
int seccomp_compile(char *err, size_t errlen);
int apply_identity(const struct launch_spec *s, char *err, size_t errlen);

/* exec.c: runs in a worker the launcher forks; never returns. */
void run_exec(const struct launch_spec *s, pid_t target, long long timeout_ms, int reply_fd) __attribute__((noreturn));
int parse_exec(const struct request *r, struct launch_spec *s, pid_t *target, long long *timeout_ms, char *err, size_t errlen);

/* netns.c */
int create_netns(const char *path, char *err, size_t errlen);
int delete_netns(const char *path, char *err, size_t errlen);

/* logs.c */
struct rotating_log {
  const char *path;
  int fd;
  long long size;
  long long max_bytes;
  int max_files;
};
int log_open(struct rotating_log *l, const char *path, long long max_bytes, int max_files);
void log_write(struct rotating_log *l, const char *buf, size_t len);

/* util.c */
void fmt_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int write_all(int fd, const void *buf, size_t len);
int write_file(const char *path, const char *text);
int mkdir_p(const char *path, mode_t mode);
unsigned long long proc_start_time(pid_t pid);
void json_string(char *out, size_t outlen, const char *s);
void reply_line(int fd, const char *req, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
