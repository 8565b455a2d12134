/*
 * The container side of a launch, run in the child the supervisor forks:
 * join the cgroups (before anything else, so every later step is accounted),
 * join the network namespace, unshare mount/uts/ipc, set up the filesystem
 * (an overlay root filesystem from an image, pivoted into so no host mount is
 * left, or a read-only view of the host without corral's own files, none of
 * the mounts it must not pin, and its own /tmp, /dev and /proc), then drop to
 * the task's identity (security.c) and exec the task. With a pid namespace
 * this process is the namespace's init: it forks the task, forwards signals
 * to it (a task's SIGTERM handler works as it would outside a container),
 * reaps orphans, hands the task's exact wait status to the supervisor and
 * exits, which ends the whole namespace.
 *
 * Any failure before exec is written to the error pipe (CLOEXEC, so a
 * successful exec closes it and the supervisor sees EOF = running).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sched.h>

#include "shim.h"

extern char **environ;

static const struct child_pipes *pipes;

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...) {
  char msg[MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  (void)write_all(pipes->err_w, msg, strlen(msg));
  _exit(127);
}

/* snprintf into a path buffer; a path that does not fit is an error, never a truncated path. */
static void pathf(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pathf(char *out, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(out, n, fmt, ap);
  va_end(ap);
  if (len < 0 || (size_t)len >= n) die("path too long: %.200s…", out);
}

/* The first read-only directory and file cover of a view, which the next ones bind (see cover()). */
struct covers {
  char dir[4200], file[4200];
};
static void harden_kernel_files(const char *root, struct covers *c);
static int privileged(const struct launch_spec *s);
static void enter_root(const char *root);

static void join_cgroups(const struct launch_spec *s) {
  char path[4200];
  for (int i = 0; i < s->ncgroups; i++) {
    pathf(path, sizeof path, "%s/cgroup.procs", s->cgroups[i]);
    if (write_file(path, "0")) die("join cgroup %s: %s", s->cgroups[i], strerror(errno));
  }
}

static void join_netns(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open network namespace %s: %s", path, strerror(errno));
  if (setns(fd, CLONE_NEWNET)) die("join network namespace %s: %s", path, strerror(errno));
  close(fd);
}

static void do_mount(const char *src, const char *dst, const char *type, unsigned long flags, const char *data) {
  if (mount(src, dst, type, flags, data)) die("mount %s on %s: %s", src ? src : type ? type : "(remount)", dst, strerror(errno));
}

/* A bind target must exist and be of the source's kind (directory or file). */
static void ensure_target(const char *source, const char *target) {
  struct stat src, dst;
  if (stat(target, &dst) == 0) return;
  if (stat(source, &src)) die("volume source %s: %s", source, strerror(errno));
  if (S_ISDIR(src.st_mode)) {
    if (mkdir_p(target, 0755)) die("create mount point %s: %s", target, strerror(errno));
    return;
  }
  char parent[4200];
  pathf(parent, sizeof parent, "%s", target);
  char *slash = strrchr(parent, '/');
  if (slash && slash != parent) {
    *slash = 0;
    if (mkdir_p(parent, 0755)) die("create %s: %s", parent, strerror(errno));
  }
  int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) die("create mount point %s: %s", target, strerror(errno));
  close(fd);
}

static void bind(const char *source, const char *target, int readonly) {
  ensure_target(source, target);
  do_mount(source, target, NULL, MS_BIND | MS_REC, NULL);
  if (readonly) do_mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
}

static int under(const char *path, const char *prefix) {
  size_t plen = strlen(prefix);
  return strncmp(path, prefix, plen) == 0 && (path[plen] == 0 || path[plen] == '/' || prefix[plen - 1] == '/');
}

/* Detaches every mount point from /proc/self/mountinfo (octal escapes decoded) that sits under one of `prefixes`: one read of the table for all of them. */
static void detach_under(const char *const *prefixes, int nprefixes) {
  if (nprefixes == 0) return;
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) die("read mountinfo: %s", strerror(errno));
  char line[8192];
  char *found[4096];
  int n = 0;
  while (fgets(line, sizeof line, f) && n < 4096) {
    char *p = line;
    for (int i = 0; i < 4 && p; i++) p = strchr(p + 1, ' ');
    if (!p) continue;
    char *mp = p + 1, *end = strchr(mp, ' ');
    if (!end) continue;
    *end = 0;
    char decoded[4096];
    size_t o = 0;
    for (char *c = mp; *c && o + 1 < sizeof decoded; c++) {
      if (c[0] == '\\' && c[1] >= '0' && c[1] <= '3' && c[2] && c[3]) {
        decoded[o++] = (char)(((c[1] - '0') << 6) | ((c[2] - '0') << 3) | (c[3] - '0'));
        c += 3;
      } else decoded[o++] = *c;
    }
    decoded[o] = 0;
    for (int i = 0; i < nprefixes; i++) {
      if (under(decoded, prefixes[i])) {
        found[n++] = strdup(decoded);
        break;
      }
    }
  }
  fclose(f);
  /* Deepest first: a detached parent would take its children along anyway, but a child listed later must not fail. */
  for (int i = n - 1; i >= 0; i--) {
    if (umount2(found[i], MNT_DETACH) && errno != EINVAL && errno != ENOENT)
      die("mask %s: %s", found[i], strerror(errno));
    free(found[i]);
  }
}

/*
 * Device nodes of the task's own (mknod, as runc does): a bind of the host's node would share its
 * inode, which a root task owning it could chmod for the whole host.
 */
static void make_dev(const char *root) {
  static const struct {
    const char *name;
    unsigned major, minor;
  } nodes[] = {{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
  char path[4200];
  pathf(path, sizeof path, "%s/dev", root);
  if (mkdir_p(path, 0755)) die("create %s: %s", path, strerror(errno));
  do_mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k");
  for (size_t i = 0; i < sizeof nodes / sizeof *nodes; i++) {
    pathf(path, sizeof path, "%s/dev/%s", root, nodes[i].name);
    if (mknod(path, S_IFCHR | 0666, makedev(nodes[i].major, nodes[i].minor)) || chmod(path, 0666)) die("create %s: %s", path, strerror(errno));
  }
  static const char *links[][2] = {{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}};
  for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
    pathf(path, sizeof path, "%s/dev/%s", root, links[i][1]);
    if (symlink(links[i][0], path) && errno != EEXIST) die("symlink %s: %s", path, strerror(errno));
  }
  pathf(path, sizeof path, "%s/dev/pts", root);
  if (mkdir_p(path, 0755)) die("create %s: %s", path, strerror(errno));
  do_mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620");
  pathf(path, sizeof path, "%s/dev/shm", root);
  if (mkdir_p(path, 0755)) die("create %s: %s", path, strerror(errno));
  do_mount("shm", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k");
}

static void setup_rootfs(const struct launch_spec *s) {
  char root[4200], upper[4200], work[4200], opts[13000], path[4200];
  pathf(root, sizeof root, "%s/merged", s->rootfs_state);
  pathf(upper, sizeof upper, "%s/upper", s->rootfs_state);
  pathf(work, sizeof work, "%s/work", s->rootfs_state);
  if (mkdir_p(root, 0755) || mkdir_p(upper, 0755) || mkdir_p(work, 0700)) die("create %s: %s", s->rootfs_state, strerror(errno));
  pathf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", s->rootfs, upper, work);
  /* nosuid: with no_new_privs a set-uid file grants the task nothing, and nothing else run in its view (a health check) gets more. */
  do_mount("overlay", root, "overlay", MS_NOSUID | MS_NODEV, opts);
  pathf(path, sizeof path, "%s/proc", root);
  if (mkdir_p(path, 0555)) die("create %s: %s", path, strerror(errno));
  do_mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  pathf(path, sizeof path, "%s/sys", root);
  if (mkdir_p(path, 0555)) die("create %s: %s", path, strerror(errno));
  do_mount("sysfs", path, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL);
  make_dev(root);
  const char *sandbox_in = s->sandbox_target ? s->sandbox_target : "/mnt/sandbox";
  pathf(path, sizeof path, "%s%s", root, sandbox_in);
  bind(s->sandbox, path, 0);
  for (int i = 0; i < s->nbinds; i++) {
    pathf(path, sizeof path, "%s%s", root, s->binds[i].target);
    bind(s->binds[i].source, path, s->binds[i].readonly);
  }
  struct covers c = {"", ""};
  if (privileged(s)) harden_kernel_files(root, &c);
  enter_root(root);
}

/*
 * Covers: an empty read-only directory or /dev/null over a path. The first of each kind is mounted
 * and made read-only; the next ones are binds of it (a bind keeps the mount's read-only flag), one
 * mount call each instead of two — a view has a dozen of them, and every mount call of every
 * launch on the host queues on the kernel's one namespace lock. A cover the task's own binds go
 * into (its sandbox lives under the agent's masked work directory) gets a tmpfs of its own,
 * made read-only once those binds are in place.
 */
static void remount_ro(const char *path, int tmpfs) {
  if (tmpfs) do_mount(NULL, path, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=64k");
  else do_mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

/* Covers `path` (nothing when it does not exist or is a symlink); returns 1 when it is a writable tmpfs left to remount_ro. */
static int cover(struct covers *c, const char *path, int writable) {
  struct stat st;
  if (lstat(path, &st) || S_ISLNK(st.st_mode)) return 0;
  if (S_ISDIR(st.st_mode)) {
    if (writable || !c->dir[0]) {
      do_mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=64k");
      if (writable) return 1;
      remount_ro(path, 1);
      pathf(c->dir, sizeof c->dir, "%s", path);
    } else do_mount(c->dir, path, NULL, MS_BIND, NULL);
  } else if (!c->file[0]) {
    do_mount("/dev/null", path, NULL, MS_BIND, NULL);
    remount_ro(path, 0);
    pathf(c->file, sizeof c->file, "%s", path);
  } else do_mount(c->file, path, NULL, MS_BIND, NULL);
  return 0;
}

/*
 * /proc and /sys as Docker leaves them to a container: kernel tunables (/proc/sys), sysrq and irq
 * settings read-only; kernel memory, key lists and timer dumps masked; firmware tables hidden.
 * Only for a task with capabilities (root's DAC_OVERRIDE would open root-only files there, and
 * some tunables check nothing else): a task without any meets the kernel's own permission checks
 * there as any unprivileged user of the host does, and is spared some thirty mount calls.
 */
static void harden_kernel_files(const char *root, struct covers *c) {
  static const char *readonly[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"};
  static const char *masked[] = {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats",
                                 "/proc/acpi", "/proc/scsi", "/proc/asound", "/sys/firmware", "/sys/devices/virtual/powercap", "/sys/kernel/debug", "/sys/kernel/security"};
  char path[4200];
  for (size_t i = 0; i < sizeof readonly / sizeof *readonly; i++) {
    pathf(path, sizeof path, "%s%s", root, readonly[i]);
    if (access(path, F_OK)) continue;
    do_mount(path, path, NULL, MS_BIND | MS_REC, NULL);
    remount_ro(path, 0);
  }
  for (size_t i = 0; i < sizeof masked / sizeof *masked; i++) {
    pathf(path, sizeof path, "%s%s", root, masked[i]);
    (void)cover(c, path, 0);
  }
}

static int privileged(const struct launch_spec *s) { return !s->has_user || s->uid == 0 || !s->has_caps || s->cap_effective || s->cap_bounding; }

/* pivot_root(".", ".") stacks the old root under the new one; detaching "." then drops every host mount. */
static void enter_root(const char *root) {
  if (chdir(root)) die("chdir %s: %s", root, strerror(errno));
  if (syscall(SYS_pivot_root, ".", ".")) die("pivot_root %s: %s", root, strerror(errno));
  if (umount2(".", MNT_DETACH)) die("detach the host root: %s", strerror(errno));
  if (chdir("/")) die("chdir /: %s", strerror(errno));
}

/*
 * A task without an image sees the host's files, read-only, without what it must not see or pin.
 * In its own mount namespace (a copy of the host's mounts, as unshare made it):
 *  - its sandbox and volume sources are cloned first (open_tree), while their paths are visible;
 *  - every mount under a masked path (corral's run, work and state directories, credentials,
 *    network namespace files, other containers' volumes) and under /tmp is detached;
 *  - everything left is read-only, nosuid and nodev in one mount_setattr (cgroupfs, /sys included);
 *  - /tmp is a private tmpfs (its pages are charged to the task's memory cgroup);
 *  - masked paths are covered by an empty read-only directory or /dev/null;
 *  - the clones are attached at their usual paths (move_mount), so the task's paths (cwd,
 *    MESOS_SANDBOX) are the same as outside;
 *  - a fresh /dev (its own nodes, devpts and shm) and /proc of its pid namespace go on top.
 * Done in place rather than by a recursive bind of "/" and pivot_root: the same view with half the
 * mount work, which every launch on the host queues for on the kernel's one namespace lock.
 */
static int clone_tree(const char *source, int *is_dir) {
  struct stat st;
  if (stat(source, &st)) die("volume source %s: %s", source, strerror(errno));
  *is_dir = S_ISDIR(st.st_mode);
  int fd = open_tree(AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (fd < 0) die("clone the mount of %s: %s", source, strerror(errno));
  return fd;
}

static void attach_tree(int fd, int is_dir, const char *target, int readonly) {
  /* ensure_target creates a directory or a file as the source is (a stand-in of the right kind). */
  ensure_target(is_dir ? "/" : "/proc/self/exe", target);
  /* nosuid and nodev in the task's view, whatever the source's mount allows (the view's other mounts are too). */
  struct mount_attr attr = {(readonly ? MOUNT_ATTR_RDONLY : 0) | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0};
  if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr)) die("set the mount flags of %s: %s", target, strerror(errno));
  if (move_mount(fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)) die("mount on %s: %s", target, strerror(errno));
  close(fd);
}

static void setup_host_view(const struct launch_spec *s) {
  int sandbox_dir, sandbox_fd = clone_tree(s->sandbox, &sandbox_dir);
  int bind_fd[MAX_BINDS], bind_dir[MAX_BINDS];
  for (int i = 0; i < s->nbinds; i++) bind_fd[i] = clone_tree(s->binds[i].source, &bind_dir[i]);
  const char *detach[257];
  for (int i = 0; i < s->nmasks; i++) detach[i] = s->masks[i];
  /* The host's /tmp and what is mounted under it are replaced by the task's own /tmp below. */
  detach[s->nmasks] = "/tmp";
  detach_under(detach, s->nmasks + 1);
  struct mount_attr attr = {MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0};
  if (mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &attr, sizeof attr)) die("make the host view read-only: %s", strerror(errno));
  do_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  /* A mask the task's own mounts go into needs a tmpfs of its own (writable until they are in place). */
  int own[256];
  struct covers c = {"", ""};
  for (int i = 0; i < s->nmasks; i++) {
    int hosts = under(s->sandbox, s->masks[i]);
    for (int b = 0; b < s->nbinds && !hosts; b++) hosts = under(s->binds[b].target, s->masks[i]);
    own[i] = cover(&c, s->masks[i], hosts);
  }
  attach_tree(sandbox_fd, sandbox_dir, s->sandbox, 0);
  for (int i = 0; i < s->nbinds; i++) attach_tree(bind_fd[i], bind_dir[i], s->binds[i].target, s->binds[i].readonly);
  for (int i = 0; i < s->nmasks; i++)
    if (own[i]) remount_ro(s->masks[i], 1);
  make_dev("");
  do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  if (privileged(s)) harden_kernel_files("", &c);
}

static void exec_task(const struct launch_spec *s) __attribute__((noreturn));
static void exec_task(const struct launch_spec *s) {
  sigset_t none;
  sigemptyset(&none);
  for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
  sigprocmask(SIG_SETMASK, &none, NULL);
  setsid();
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(pipes->out_w, 1) < 0 || dup2(pipes->errlog_w, 2) < 0) die("stdio: %s", strerror(errno));
  if (s->ns_pid) (void)write_file("/proc/self/oom_score_adj", "0");
  if (chdir(s->cwd)) die("working directory %s: %s", s->cwd, strerror(errno));
  char err[MSG_MAX];
  if (apply_identity(s, err, sizeof err)) die("%s", err);
  /* execvp searches the PATH of `environ`: make it the task's. */
  environ = (char **)s->envp;
  execvp(s->exec_file, (char *const *)s->argv);
  die("exec %s: %s", s->exec_file, strerror(errno));
}

static void noop_handler(int sig) { (void)sig; }

/* The stack the task's process runs on until its exec (see run_container). */
static char task_stack[256 * 1024] __attribute__((aligned(16)));

static int task_main(void *spec) { exec_task((const struct launch_spec *)spec); }

/* pid 1 of the task's namespace: forward signals, reap, report the task's status. */
static void run_init(pid_t task, int relay_w) __attribute__((noreturn));
static void run_init(pid_t task, int relay_w) {
  sigset_t all;
  sigfillset(&all);
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&all, &si);
    if (sig < 0) continue;
    if (sig == SIGCHLD) {
      int status;
      pid_t pid;
      while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == task) {
          (void)write_all(relay_w, &status, sizeof status);
          _exit(0);
        }
      }
    } else if (sig != SIGKILL && sig != SIGSTOP) {
      kill(task, sig);
    }
  }
}

void run_container(const struct launch_spec *s, const struct child_pipes *p) {
  pipes = p;
  join_cgroups(s);
  if (s->netns) join_netns(s->netns);
  int flags = (s->ns_mnt ? CLONE_NEWNS : 0) | (s->ns_uts ? CLONE_NEWUTS : 0) | (s->ns_ipc ? CLONE_NEWIPC : 0);
  if (flags && unshare(flags)) die("unshare namespaces: %s", strerror(errno));
  if (s->ns_mnt) {
    /* Nothing mounted here may propagate back to the host. */
    do_mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL);
    if (s->rootfs) setup_rootfs(s);
    else setup_host_view(s);
  }
  if (s->hostname && s->ns_uts && sethostname(s->hostname, strlen(s->hostname))) die("sethostname: %s", strerror(errno));
  if (!s->ns_pid) exec_task(s);

  /* Namespace init: the OOM killer must pick the task, never its init. */
  (void)write_file("/proc/self/oom_score_adj", "-1000");
  prctl(PR_SET_NAME, "corral-init");
  sigset_t all;
  sigfillset(&all);
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP && sig != SIGCHLD) signal(sig, noop_handler);
  sigprocmask(SIG_BLOCK, &all, NULL);
  /*
   * The task is started like posix_spawn does it: a child sharing this process's memory on its own
   * stack, this process paused until the child has exec'd (or died trying), so no page tables are
   * copied for a process that is about to exec anyway. The child touches nothing this process
   * reads later: its signal dispositions and file table are its own copies (no CLONE_SIGHAND or
   * CLONE_FILES), and `environ`, which it points at the task's environment, is unused here.
   */
  pid_t task = clone(task_main, task_stack + sizeof task_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, (void *)s);
  if (task < 0) die("start the task: %s", strerror(errno));
  close(p->out_w);
  close(p->errlog_w);
  close(p->err_w);
  run_init(task, p->relay_w);
}
