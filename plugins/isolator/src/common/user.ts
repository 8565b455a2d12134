/**
 * A task's user → uid, gid and supplementary groups, read from the passwd
 * and group files of the filesystem the task will see (the host's, or its
 * image's). "name", "uid" and "uid:gid" are accepted. An unknown user is a
 * bad task definition, refused before launch.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { invalid } from '../../../../contracts/errors.js';

interface ResolvedUser {
  uid: number;
  gid: number;
  groups: number[];
}

function table(file: string): string[][] {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(':'));
  } catch {
    return [];
  }
}

export function resolveUser(spec: string, root = '/'): ResolvedUser {
  const [name, groupPart] = spec.split(':') as [string, string | undefined];
  const passwd = table(join(root, 'etc/passwd'));
  const groupFile = table(join(root, 'etc/group'));
  const entry = /^\d+$/.test(name) ? passwd.find((e) => e[2] === name) : passwd.find((e) => e[0] === name);
  if (!entry && !/^\d+$/.test(name)) throw invalid(`unknown user "${name}" (not in ${join(root, 'etc/passwd')})`);
  const uid = Number(entry ? entry[2] : name);
  let gid = entry ? Number(entry[3]) : uid;
  if (groupPart !== undefined) {
    const g = /^\d+$/.test(groupPart) ? Number(groupPart) : Number(groupFile.find((e) => e[0] === groupPart)?.[2] ?? NaN);
    if (!Number.isInteger(g)) throw invalid(`unknown group "${groupPart}"`);
    gid = g;
  }
  const userName = entry?.[0];
  const groups = [gid, ...groupFile.filter((e) => userName && (e[3] ?? '').split(',').includes(userName)).map((e) => Number(e[2]))];
  return { uid, gid, groups: [...new Set(groups)].filter((g) => Number.isInteger(g)) };
}
