/**
 * A task's user → uid, gid and supplementary groups, read from the passwd
 * and group files of the filesystem the task will see (the host's, or its
 * image's). "name", "uid" and "uid:gid" are accepted. An unknown user is a
 * bad task definition, refused before launch. Answers are kept while the two
 * files are unchanged: a launch costs two stats, not two reads and parses.
 */
import { readFileSync, statSync } from 'node:fs';
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

/** Answers by root and spec, valid while the passwd and group files keep their modification times. */
const cache = new Map<string, { stamp: string; user: ResolvedUser }>();

function stamp(root: string): string {
  const m = (f: string): number => {
    try {
      return statSync(join(root, f)).mtimeMs;
    } catch {
      return -1;
    }
  };
  return `${m('etc/passwd')}/${m('etc/group')}`;
}

export function resolveUser(spec: string, root = '/'): ResolvedUser {
  const key = `${root}\0${spec}`;
  const now = stamp(root);
  const hit = cache.get(key);
  if (hit?.stamp === now) return hit.user;
  const user = lookup(spec, root);
  if (cache.size > 1000) cache.clear();
  cache.set(key, { stamp: now, user });
  return user;
}

function lookup(spec: string, root: string): ResolvedUser {
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
