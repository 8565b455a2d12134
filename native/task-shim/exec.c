/*
 * `exec`: run a command inside a running container, as its task: in its
 * namespaces (mount, uts, ipc, network, pid), with its user, groups,
 * capability sets, no_new_privs and seccomp profile — the way a COMMAND health
 * check must run (Mesos runs it in the task's container, not on the host). The
 * worker joins the namespaces, forks the command (a fork is what enters the
 * pid namespace), collects up to 4 KiB of its output, kills it at the
 * deadline and replies "ok STATUS OUTPUT" (STATUS: exit code, 128+signal).
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

extern char **environ;

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void run_exec(const struct launch_spec *s, pid_t target, long long timeout_ms, int reply_fd) {
  /* All namespace files first: once in the task's mount namespace, /proc is its own. */
  static const char *names[] = {"ipc", "uts", "net", "pid", "mnt"};
  int fds[5];
  for (int i = 0; i < 5; i++) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)target, names[i]);
    fds[i] = open(path, O_RDONLY | O_CLOEXEC);
    if (fds[i] < 0) {
      reply_line(reply_fd, s->req, "err open %s: %s", path, strerror(errno));
      _exit(1);
    }
  }
  for (int i = 0; i < 5; i++) {
    if (setns(fds[i], 0)) {
      reply_line(reply_fd, s->req, "err join the %s namespace of %d: %s", names[i], (int)target, strerror(errno));
      _exit(1);
    }
    close(fds[i]);
  }
  int out[2];
  if (pipe2(out, O_CLOEXEC)) {
    reply_line(reply_fd, s->req, "err pipe: %s", strerror(errno));
    _exit(1);
  }
  pid_t child = fork();
  if (child < 0) {
    reply_line(reply_fd, s->req, "err fork: %s", strerror(errno));
    _exit(1);
  }
  if (child == 0) {
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    if ((!s->cwd || chdir(s->cwd)) && chdir("/")) _exit(126);
    char err[MSG_MAX];
    if (apply_identity(s, err, sizeof err)) {
      dprintf(2, "%s\n", err);
      _exit(126);
    }
    environ = (char **)s->envp;
    execvp(s->exec_file, (char *const *)s->argv);
    dprintf(2, "exec %s: %s\n", s->exec_file, strerror(errno));
    _exit(127);
  }
  close(out[1]);
  char buf[4096];
  size_t got = 0;
  long long deadline = mono_ms() + timeout_ms;
  int timed_out = 0;
  for (;;) {
    long long left = deadline - mono_ms();
    if (left <= 0) {
      timed_out = 1;
      break;
    }
    struct pollfd p = {out[0], POLLIN, 0};
    int rc = poll(&p, 1, (int)left);
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) continue;
    char tmp[4096];
    ssize_t n = read(out[0], tmp, sizeof tmp);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break; /* EOF: every copy of the pipe is closed */
    size_t take = (size_t)n < sizeof buf - 1 - got ? (size_t)n : sizeof buf - 1 - got;
    memcpy(buf + got, tmp, take);
    got += take;
  }
  if (timed_out) kill(child, SIGKILL);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  buf[got] = 0;
  if (timed_out) reply_line(reply_fd, s->req, "ok timeout %s", buf);
  else reply_line(reply_fd, s->req, "ok %d %s", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), buf);
  _exit(0);
}
