/*
 * corral-task-shim serve — the resident launcher of the native containerizer.
 *
 * Requests arrive on stdin as NUL-terminated "key=value" fields, each request
 * ended by an empty field; every request carries `op` and `req` (an id the
 * reply echoes). Replies are single lines on stdout: "REQ ok …" or
 * "REQ err MESSAGE". Operations:
 *   launch        fork a supervisor (supervisor.c); it replies itself with
 *                 "ok SUPERVISOR_PID SUPERVISOR_START TASK_PID TASK_START"
 *                 (start times: field 22 of /proc/PID/stat) once
 *                 the task has exec'd
 *   netns-create  path=FILE: a new network namespace (loopback up) bound onto FILE
 *   netns-delete  path=FILE: unmount and remove it
 *   exec          pid=PID arg=… [env=… cwd=… uid= gid= groups= caps_…=
 *                 timeout_ms=]: run a command in that process's container as
 *                 its task (exec.c); "ok STATUS OUTPUT" or "ok timeout OUTPUT"
 *   ping          "ok" (start-up handshake)
 * The launcher exits when stdin closes (the agent went away); supervisors
 * and their tasks carry on without it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"

#define MAX_REQUEST (16 * 1024 * 1024)

static int sigfd = -1;

static pid_t fork_worker(void) {
  pid_t pid = fork();
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    close(sigfd);
    /* Long-lived children must not pin the agent's working directory (or the mount it is on). */
    if (chdir("/")) _exit(1);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 2);
    }
  }
  return pid;
}

static void handle(struct request *r) {
  static struct launch_spec spec;
  char err[MSG_MAX];
  const char *op = field(r, "op"), *req = field(r, "req");
  if (!op || !req) {
    reply_line(1, req, "err request without op or req");
    return;
  }
  if (strcmp(op, "ping") == 0) {
    reply_line(1, req, "ok");
  } else if (strcmp(op, "launch") == 0) {
    if (parse_launch(r, &spec, err, sizeof err)) {
      reply_line(1, req, "err %s", err);
      return;
    }
    pid_t pid = fork_worker();
    if (pid < 0) reply_line(1, req, "err fork: %s", strerror(errno));
    else if (pid == 0) run_supervisor(&spec, 1);
  } else if (strcmp(op, "exec") == 0) {
    pid_t target;
    long long timeout_ms;
    if (parse_exec(r, &spec, &target, &timeout_ms, err, sizeof err)) {
      reply_line(1, req, "err %s", err);
      return;
    }
    pid_t pid = fork_worker();
    if (pid < 0) reply_line(1, req, "err fork: %s", strerror(errno));
    else if (pid == 0) run_exec(&spec, target, timeout_ms, 1);
  } else if (strcmp(op, "netns-create") == 0) {
    const char *path = field(r, "path");
    if (!path) return reply_line(1, req, "err netns-create needs path");
    pid_t pid = fork_worker();
    if (pid < 0) reply_line(1, req, "err fork: %s", strerror(errno));
    else if (pid == 0) {
      if (create_netns(path, err, sizeof err)) reply_line(1, req, "err %s", err);
      else reply_line(1, req, "ok");
      _exit(0);
    }
  } else if (strcmp(op, "netns-delete") == 0) {
    const char *path = field(r, "path");
    if (!path) return reply_line(1, req, "err netns-delete needs path");
    if (delete_netns(path, err, sizeof err)) reply_line(1, req, "err %s", err);
    else reply_line(1, req, "ok");
  } else {
    reply_line(1, req, "err unknown op \"%s\"", op);
  }
}

/* Index just past the empty field that ends the request starting at `from`, or 0 if incomplete. */
static size_t request_end(const char *buf, size_t len, size_t from) {
  for (size_t i = from; i < len;) {
    const char *nul = memchr(buf + i, 0, len - i);
    if (!nul) return 0;
    if (nul == buf + i) return i + 1;
    i = (size_t)(nul - buf) + 1;
  }
  return 0;
}

/* Handles every complete request in buf[0..len); returns the bytes consumed. */
static size_t process(char *buf, size_t len) {
  static struct request r;
  size_t start = 0, end;
  while ((end = request_end(buf, len, start)) != 0) {
    r.count = 0;
    for (size_t i = start; i + 1 < end;) {
      size_t flen = strlen(buf + i);
      char *eq = memchr(buf + i, '=', flen);
      if (eq && r.count < (int)(sizeof r.fields / sizeof *r.fields)) {
        *eq = 0;
        r.fields[r.count].key = buf + i;
        r.fields[r.count].value = eq + 1;
        r.count++;
      }
      i += flen + 1;
    }
    handle(&r);
    start = end;
  }
  return start;
}

static int serve(void) {
  char err[MSG_MAX];
  /* Once for every task: each launch only loads the compiled program. */
  if (seccomp_compile(err, sizeof err)) {
    fprintf(stderr, "corral-task-shim: %s\n", err);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) {
    perror("signalfd");
    return 1;
  }
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  if (!buf) return 1;
  for (;;) {
    struct pollfd pfd[2] = {{0, POLLIN, 0}, {sigfd, POLLIN, 0}};
    if (poll(pfd, 2, -1) < 0) {
      if (errno == EINTR) continue;
      perror("poll");
      return 1;
    }
    if (pfd[1].revents) {
      struct signalfd_siginfo si;
      while (read(sigfd, &si, sizeof si) > 0) {
      }
      while (waitpid(-1, NULL, WNOHANG) > 0) {
      }
    }
    if (!pfd[0].revents) continue;
    if (len == cap) {
      if (cap >= MAX_REQUEST) {
        fprintf(stderr, "request larger than %d bytes\n", MAX_REQUEST);
        return 1;
      }
      char *bigger = realloc(buf, cap * 2);
      if (!bigger) return 1;
      buf = bigger;
      cap *= 2;
    }
    ssize_t n = read(0, buf + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0; /* the agent is gone: supervisors carry on */
    len += (size_t)n;
    size_t used = process(buf, len);
    memmove(buf, buf + used, len - used);
    len -= used;
  }
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "serve") == 0) return serve();
  fprintf(stderr, "usage: %s serve   (requests on stdin, replies on stdout; see main.c)\n", argv[0]);
  return 2;
}
