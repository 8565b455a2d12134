/**
 * A launch plan as the task launcher's request fields (see
 * native/task-shim/main.c and request.c for the other side). Pure.
 */
import type { Field } from './launcher.js';
import type { LaunchPlan } from './isolators/types.js';

interface LaunchFiles {
  sandbox: string;
  stdout: string;
  stderr: string;
  maxBytes: number;
  maxFiles: number;
  terminationFile: string;
  exitLink: string;
  supervisorFile: string;
}

export function launchFields(containerId: string, command: { file: string; argv: string[] }, plan: LaunchPlan, files: LaunchFiles): Field[] {
  const f: Field[] = [
    ['id', containerId],
    ['sandbox', files.sandbox],
    ['cwd', plan.cwd],
    ['exec', command.file],
    ...command.argv.map((a): Field => ['arg', a]),
    ...Object.entries(plan.env).map(([k, v]): Field => ['env', `${k}=${v}`]),
    ...plan.cgroupMkdirs.map((d): Field => ['mkdir', d]),
    ...plan.cgroupWrites.map(([file, value]): Field => ['write', `${file}\t${value}`]),
    ...plan.cgroupDirs.map((d): Field => ['cgroup', d]),
    ['stdout', files.stdout],
    ['stderr', files.stderr],
    ['log_max_bytes', String(files.maxBytes)],
    ['log_max_files', String(files.maxFiles)],
    ['status', files.terminationFile],
    ['exit_link', files.exitLink],
    ['supervisor_file', files.supervisorFile],
  ];
  if (plan.oomFile) f.push(['oom_file', plan.oomFile]);
  if (plan.namespaces.length) f.push(['ns', plan.namespaces.join(',')]);
  if (plan.netns) f.push(['netns', plan.netns]);
  if (plan.hostname) f.push(['hostname', plan.hostname]);
  if (plan.rootfs) f.push(['rootfs', plan.rootfs], ['rootfs_state', plan.rootfsState!], ['sandbox_target', plan.sandboxTarget]);
  for (const b of plan.binds) f.push(['bind', `${b.readonly ? 'ro' : 'rw'}\t${b.source}\t${b.target}`]);
  if (!plan.rootfs) for (const m of plan.masks) f.push(['mask', m]);
  if (plan.user) f.push(['uid', String(plan.user.uid)], ['gid', String(plan.user.gid)], ['groups', plan.user.groups.join(',')]);
  if (plan.capabilities) f.push(['caps_effective', plan.capabilities.effective], ['caps_bounding', plan.capabilities.bounding]);
  if (plan.seccomp) f.push(['seccomp', plan.seccomp]);
  return f;
}
