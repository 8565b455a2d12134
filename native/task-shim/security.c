/*
 * What a task may do once it runs: its user, its capabilities, no new
 * privileges, and the default seccomp profile.
 *
 * Capabilities. The task gets exactly the effective set the launch names
 * (cap_effective), never more than its bounding set (cap_bounding), whatever
 * its uid: the securebits SECBIT_NOROOT (locked) make uid 0 nothing special
 * at exec, and the effective set is handed over as ambient capabilities,
 * which survive exec for any uid (Linux 4.3+, as Mesos's linux/capabilities
 * isolator does it). So a non-root task with an empty set has no capability
 * in any set — bounding and ambient included — and a root task has only the
 * reduced set the agent chose. The order matters: the bounding set is cut
 * while this process still has CAP_SETPCAP, KEEP_CAPS keeps the permitted
 * set across setuid so capset/ambient can hand the set over afterwards.
 *
 * Seccomp. The profile is compiled once, by the launcher at start-up
 * (libseccomp → a BPF program in memory); every task only loads it, one
 * syscall, just before exec. Denied calls fail with EPERM rather than killing
 * the task, so a program gets an error it can report.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

static struct sock_fprog seccomp_prog;
static int cap_last = -1;

/* Denied with EPERM. Docker's default profile is the reference: what it forbids without a capability, plus ptrace and io_uring. */
static const char *const denied[] = {
    "mount", "umount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    "kexec_load", "kexec_file_load", "reboot", "init_module", "finit_module", "delete_module", "create_module", "query_module", "get_kernel_syms",
    "bpf", "perf_event_open", "fanotify_init", "lookup_dcookie", "keyctl", "add_key", "request_key", "ptrace", "process_vm_readv", "process_vm_writev",
    "kcmp", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "setns", "unshare", "userfaultfd", "open_by_handle_at",
    "iopl", "ioperm", "nfsservctl", "uselib", "sysfs", "_sysctl", "ustat", "vm86", "vm86old", "settimeofday", "stime", "clock_settime",
    "clock_adjtime", "adjtimex", "syslog", "vhangup", "pciconfig_read", "pciconfig_write", "pciconfig_iobase", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "mbind", "set_mempolicy", "move_pages", "migrate_pages",
};

/*
 * clone with a namespace flag is refused (unshare and setns are, whatever the flags); clone3 passes
 * its flags in memory a filter cannot read, so it answers ENOSYS and the C library falls back to
 * clone (Docker does the same).
 */

int seccomp_compile(char *err, size_t errlen) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) return fmt_err(err, errlen, "seccomp_init failed"), -1;
  int rc = 0;
  const char *failed = NULL;
  /* 32-bit entry points of a 64-bit kernel get the same rules (libseccomp adds each rule for every arch). */
  if (seccomp_arch_native() == SCMP_ARCH_X86_64) {
    (void)seccomp_arch_add(ctx, SCMP_ARCH_X86);
    (void)seccomp_arch_add(ctx, SCMP_ARCH_X32);
  }
  for (size_t i = 0; i < sizeof denied / sizeof *denied && rc == 0; i++) {
    int nr = seccomp_syscall_resolve_name(denied[i]);
    if (nr == __NR_SCMP_ERROR) continue; /* not on this architecture */
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    if (rc) failed = denied[i];
  }
  /* One rule per flag (libseccomp compares masked values for equality; the rules are or'ed). */
  static const unsigned long long ns_flags[] = {CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP, CLONE_NEWTIME};
  for (size_t i = 0; i < sizeof ns_flags / sizeof *ns_flags && rc == 0; i++)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
  if (rc) {
    seccomp_release(ctx);
    return fmt_err(err, errlen, "seccomp rule %s: %s", failed ? failed : "clone", strerror(-rc)), -1;
  }
  int nr3 = seccomp_syscall_resolve_name("clone3");
  if (nr3 != __NR_SCMP_ERROR && (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr3, 0))) {
    seccomp_release(ctx);
    return fmt_err(err, errlen, "seccomp rule clone3: %s", strerror(-rc)), -1;
  }
  /* The BPF program, exported through a memory file and kept for every launch. */
  int fd = memfd_create("corral-seccomp", MFD_CLOEXEC);
  if (fd < 0 || (rc = seccomp_export_bpf(ctx, fd)) != 0) {
    seccomp_release(ctx);
    if (fd >= 0) close(fd);
    return fmt_err(err, errlen, "seccomp export: %s", strerror(rc ? -rc : errno)), -1;
  }
  seccomp_release(ctx);
  off_t size = lseek(fd, 0, SEEK_END);
  struct sock_filter *filter = size > 0 ? malloc((size_t)size) : NULL;
  if (!filter || pread(fd, filter, (size_t)size, 0) != size) {
    close(fd);
    free(filter);
    return fmt_err(err, errlen, "seccomp export: short read"), -1;
  }
  close(fd);
  seccomp_prog.len = (unsigned short)((size_t)size / sizeof *filter);
  seccomp_prog.filter = filter;

  FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
  if (!f || fscanf(f, "%d", &cap_last) != 1) cap_last = CAP_LAST_CAP;
  if (f) fclose(f);
  return 0;
}

static int capset_all(unsigned long long set) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  for (int i = 0; i < 2; i++) {
    data[i].effective = data[i].permitted = data[i].inheritable = (__u32)(set >> (32 * i));
  }
  return (int)syscall(SYS_capset, &hdr, data);
}

int apply_identity(const struct launch_spec *s, char *err, size_t errlen) {
  int last = cap_last >= 0 ? cap_last : CAP_LAST_CAP;
  if (s->has_caps) {
    if (prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS | SECBIT_NOROOT | SECBIT_NOROOT_LOCKED, 0, 0, 0))
      return fmt_err(err, errlen, "set securebits: %s", strerror(errno)), -1;
    for (int cap = 0; cap <= last; cap++) {
      if (s->cap_bounding & (1ULL << cap)) continue;
      if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) && errno != EINVAL) return fmt_err(err, errlen, "drop capability %d from the bounding set: %s", cap, strerror(errno)), -1;
    }
  }
  if (s->has_user) {
    if (setgroups((size_t)s->ngroups, s->groups)) return fmt_err(err, errlen, "setgroups: %s", strerror(errno)), -1;
    if (setgid(s->gid)) return fmt_err(err, errlen, "setgid %d: %s", (int)s->gid, strerror(errno)), -1;
    if (setuid(s->uid)) return fmt_err(err, errlen, "setuid %d: %s", (int)s->uid, strerror(errno)), -1;
  }
  if (s->has_caps) {
    unsigned long long eff = s->cap_effective & s->cap_bounding;
    if (capset_all(eff)) return fmt_err(err, errlen, "capset: %s", strerror(errno)), -1;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) && errno != EINVAL) return fmt_err(err, errlen, "clear ambient capabilities: %s", strerror(errno)), -1;
    for (int cap = 0; cap <= last; cap++) {
      if (!(eff & (1ULL << cap))) continue;
      if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0)) return fmt_err(err, errlen, "raise ambient capability %d: %s", cap, strerror(errno)), -1;
    }
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) return fmt_err(err, errlen, "no_new_privs: %s", strerror(errno)), -1;
  if (s->seccomp && seccomp_prog.filter) {
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &seccomp_prog)) return fmt_err(err, errlen, "load the seccomp profile: %s", strerror(errno)), -1;
  }
  return 0;
}
