/*
 * The per-task supervisor. Forked by the launcher, it leaves the launcher's
 * session (so nothing aimed at the agent's process group reaches it), forks
 * the container child, and answers the launch request on the launcher's
 * stdout once the task has exec'd (or with the reason it could not). Then it
 * copies the task's stdout/stderr into size-rotated files, waits for the task,
 * removes its cgroups and writes its termination as JSON. The JSON is written
 * to a temporary name and renamed, then hard-linked into the containerizer's
 * exits directory, whose single watch tells the agent at once. It outlives
 * the agent; the status file is how a restarted agent learns what happened
 * while it was away.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define DRAIN_MS 200

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "oom_kill N" from memory.oom_control (v1) or memory.events (v2); -1 when unreadable. */
static long long read_oom_kills(const char *path) {
  if (!path) return -1;
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  char line[256];
  long long n = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "oom_kill ", 9) == 0) n = strtoll(line + 9, NULL, 10);
  fclose(f);
  return n;
}

/*
 * Written under a temporary name and renamed, so a reader never sees half a file. Relative to
 * `dirfd` (AT_FDCWD for an absolute path): the status directory is held open from before the task
 * started, so a task that owns its sandbox cannot redirect the write by renaming the directory or
 * planting a symlink in its place.
 */
static int write_atomic_at(int dirfd, const char *path, const char *text, size_t len) {
  char tmp[4200];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return -1;
  int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return -1;
  int rc = write_all(fd, text, len);
  close(fd);
  if (rc == 0) rc = renameat(dirfd, tmp, dirfd, path);
  if (rc) unlinkat(dirfd, tmp, 0);
  return rc;
}

static int write_atomic(const char *path, const char *text, size_t len) { return write_atomic_at(AT_FDCWD, path, text, len); }

/* The termination file's directory, opened before the task runs; -1 when it cannot be. */
static int status_dirfd = -1;
static const char *status_name;

/*
 * The container's cgroups, once its task is over: removed here, by each
 * supervisor in parallel, rather than one after the other on the agent's
 * thread at destroy (where every cgroupfs lookup also waits behind the other
 * supervisors' cgroup work). With a pid namespace nothing is left in them
 * once the namespace init has been reaped (its exit waits for every process
 * of the namespace). A cgroup still busy — a process left behind by a task
 * without a pid namespace — stays for the agent's destroy, which kills and
 * removes. Returns whether all are gone; the termination says so, so the
 * agent does not look at them again.
 */
static int remove_cgroups(const struct launch_spec *s) {
  int all = 1;
  for (int i = s->ncgroups - 1; i >= 0; i--) {
    int rc;
    for (int tries = 0; (rc = rmdir(s->cgroups[i])) && errno == EBUSY && tries < 3; tries++) usleep(1000);
    if (rc && errno != ENOENT) all = 0;
  }
  return all;
}

static void write_status(const struct launch_spec *s, int have_status, int status, const char *error, pid_t task, long long oom_kills, int cgroups_removed) {
  char json[MSG_MAX * 2 + 512], err_json[MSG_MAX * 2 + 8], sig_json[64] = "null", code_json[32] = "null";
  if (have_status && WIFEXITED(status)) snprintf(code_json, sizeof code_json, "%d", WEXITSTATUS(status));
  if (have_status && WIFSIGNALED(status)) {
    const char *abbrev = sigabbrev_np(WTERMSIG(status));
    char name[32];
    if (abbrev) snprintf(name, sizeof name, "SIG%s", abbrev);
    else snprintf(name, sizeof name, "SIG%d", WTERMSIG(status));
    json_string(sig_json, sizeof sig_json, name);
  }
  if (error) json_string(err_json, sizeof err_json, error);
  else strcpy(err_json, "null");
  int n = snprintf(json, sizeof json,
                   "{\"exitCode\":%s,\"signal\":%s,\"oomKills\":%lld,\"finishedAt\":%lld,\"pid\":%d,\"error\":%s,\"cgroupsRemoved\":%s}\n",
                   code_json, sig_json, oom_kills, now_ms(), (int)task, err_json, cgroups_removed ? "true" : "false");
  if (status_dirfd < 0 || write_atomic_at(status_dirfd, status_name, json, (size_t)n)) {
    /* No sandbox copy: the exits notice alone tells the agent. */
    if (s->exit_link) (void)write_atomic(s->exit_link, json, (size_t)n);
    return;
  }
  /* The exits directory may be on another filesystem than the sandbox: then it gets a copy. */
  if (s->exit_link && linkat(status_dirfd, status_name, AT_FDCWD, s->exit_link, 0) && errno != EEXIST) (void)write_atomic(s->exit_link, json, (size_t)n);
}

static void pipe_or_die(int fds[2], const struct launch_spec *s, int reply_fd) {
  if (pipe2(fds, O_CLOEXEC)) {
    reply_line(reply_fd, s->req, "err pipe: %s", strerror(errno));
    _exit(1);
  }
}

/* Copies what is readable on *fd into the log; closes it at EOF. */
static void pump(int *fd, struct rotating_log *log) {
  char buf[65536];
  ssize_t n = read(*fd, buf, sizeof buf);
  if (n > 0) log_write(log, buf, (size_t)n);
  else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    close(*fd);
    *fd = -1;
  }
}

void run_supervisor(struct launch_spec *s, int reply_fd) {
  setsid();
  prctl(PR_SET_NAME, "corral-sup");
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);

  /* Cgroups first: made here, in parallel with other launches, instead of on the agent's thread. */
  for (int i = 0; i < s->nmkdirs; i++) {
    if (mkdir_p(s->mkdirs[i], 0755)) {
      reply_line(reply_fd, s->req, "err create cgroup %s: %s", s->mkdirs[i], strerror(errno));
      _exit(1);
    }
  }
  for (int i = 0; i < s->nwrites; i++) {
    if (write_file(s->write_files[i], s->write_values[i])) {
      reply_line(reply_fd, s->req, "err write %s to %s: %s", s->write_values[i], s->write_files[i], strerror(errno));
      _exit(1);
    }
  }
  char status_dir[4200];
  if (snprintf(status_dir, sizeof status_dir, "%s", s->status_path) < (int)sizeof status_dir) {
    char *slash = strrchr(status_dir, '/');
    if (slash && slash != status_dir) {
      *slash = 0;
      (void)mkdir(status_dir, 0755);
      status_dirfd = open(status_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      status_name = s->status_path + (slash - status_dir) + 1;
    }
  }

  struct rotating_log out, errlog;
  if (log_open(&out, s->stdout_path, s->log_max_bytes, s->log_max_files) || log_open(&errlog, s->stderr_path, s->log_max_bytes, s->log_max_files)) {
    reply_line(reply_fd, s->req, "err open log files in %s: %s", s->sandbox, strerror(errno));
    _exit(1);
  }
  int errp[2], outp[2], errlogp[2], relay[2] = {-1, -1};
  pipe_or_die(errp, s, reply_fd);
  pipe_or_die(outp, s, reply_fd);
  pipe_or_die(errlogp, s, reply_fd);
  if (s->ns_pid) {
    pipe_or_die(relay, s, reply_fd);
    if (unshare(CLONE_NEWPID)) {
      reply_line(reply_fd, s->req, "err unshare(CLONE_NEWPID): %s", strerror(errno));
      _exit(1);
    }
  }
  struct child_pipes cp = {errp[1], outp[1], errlogp[1], relay[1]};
  pid_t child = fork();
  if (child < 0) {
    reply_line(reply_fd, s->req, "err fork: %s", strerror(errno));
    _exit(1);
  }
  if (child == 0) {
    close(errp[0]);
    close(outp[0]);
    close(errlogp[0]);
    if (relay[0] >= 0) close(relay[0]);
    close(reply_fd);
    if (sigfd >= 0) close(sigfd);
    run_container(s, &cp);
  }
  close(errp[1]);
  close(outp[1]);
  close(errlogp[1]);
  if (relay[1] >= 0) close(relay[1]);

  /* EOF on the error pipe: every copy is closed, i.e. the task has exec'd. */
  char msg[MSG_MAX];
  size_t got = 0;
  for (;;) {
    ssize_t n = read(errp[0], msg + got, sizeof msg - 1 - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
    if (got >= sizeof msg - 1) break;
  }
  msg[got] = 0;
  close(errp[0]);
  if (got > 0) {
    int st;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
    }
    write_status(s, 0, 0, msg, child, read_oom_kills(s->oom_file), 0);
    reply_line(reply_fd, s->req, "err %s", msg);
    _exit(1);
  }
  char identity[128];
  int idlen = snprintf(identity, sizeof identity, "%d %llu %d %llu", (int)getpid(), proc_start_time(getpid()), (int)child, proc_start_time(child));
  /* Recorded before the reply, so a restarted agent finds the supervisor even if the reply was lost with the agent. */
  if (s->supervisor_file) {
    identity[idlen] = '\n';
    (void)write_atomic(s->supervisor_file, identity, (size_t)idlen + 1);
    identity[idlen] = 0;
  }
  reply_line(reply_fd, s->req, "ok %s", identity);
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull >= 0) dup2(devnull, reply_fd);

  int task_status = 0, have_relay = 0, child_status = 0, child_done = 0;
  int relay_fd = relay[0];
  size_t relay_got = 0;
  long long drain_deadline = 0;
  while (outp[0] >= 0 || errlogp[0] >= 0 || !child_done || relay_fd >= 0) {
    struct pollfd pfd[4] = {{outp[0], POLLIN, 0}, {errlogp[0], POLLIN, 0}, {relay_fd, POLLIN, 0}, {child_done ? -1 : sigfd, POLLIN, 0}};
    int timeout = -1;
    if (child_done) {
      long long left = drain_deadline - mono_ms();
      if (left <= 0) break;
      timeout = (int)left;
    }
    int rc = poll(pfd, 4, timeout);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) break;
    if (pfd[0].revents) pump(&outp[0], &out);
    if (pfd[1].revents) pump(&errlogp[0], &errlog);
    if (pfd[2].revents) {
      ssize_t n = read(relay_fd, (char *)&task_status + relay_got, sizeof task_status - relay_got);
      if (n > 0 && (relay_got += (size_t)n) == sizeof task_status) have_relay = 1;
      if (n <= 0 || have_relay) {
        close(relay_fd);
        relay_fd = -1;
      }
    }
    if (pfd[3].revents) {
      struct signalfd_siginfo si;
      while (read(sigfd, &si, sizeof si) > 0) {
      }
      if (waitpid(child, &child_status, WNOHANG) == child) {
        child_done = 1;
        /* Whatever still holds the task's pipes (a daemonised grandchild) gets a short drain, not a wait. */
        drain_deadline = mono_ms() + DRAIN_MS;
      }
    }
  }
  if (!child_done) waitpid(child, &child_status, 0);
  /* The OOM count first: it lives in the memory cgroup about to go. */
  long long oom_kills = read_oom_kills(s->oom_file);
  int removed = remove_cgroups(s);
  write_status(s, 1, have_relay ? task_status : child_status, NULL, child, oom_kills, removed);
  _exit(0);
}
