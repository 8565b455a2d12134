/**
 * Root filesystems from image tarballs (a tar of a rootfs, e.g. one built
 * from busybox-static). Each tarball is extracted once into
 * `<workDir>/images/<digest>/rootfs`, keyed by its path, size and mtime, and
 * shared read-only by every container using it: each container writes into
 * its own overlay upper directory. Concurrent launches of one image wait for
 * the same extraction.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError, invalid } from '../../../../contracts/errors.js';
import { run } from '../../../../common/sys/exec.js';

export class ImageCache {
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(private readonly dir: string) {}

  /** The extracted root of `tarball` (extracting it the first time). */
  rootfs(tarball: string): Promise<string> {
    let st;
    let real: string;
    try {
      real = realpathSync(tarball);
      st = statSync(real);
    } catch {
      return Promise.reject(invalid(`image tarball ${tarball} does not exist`));
    }
    if (!st.isFile()) return Promise.reject(invalid(`image tarball ${tarball} is not a file`));
    const digest = createHash('sha256').update(`${real}\0${st.size}\0${st.mtimeMs}`).digest('hex').slice(0, 32);
    const root = join(this.dir, digest, 'rootfs');
    if (existsSync(root)) return Promise.resolve(root);
    let p = this.inflight.get(digest);
    if (!p) {
      p = this.extract(real, join(this.dir, digest), root).finally(() => this.inflight.delete(digest));
      this.inflight.set(digest, p);
    }
    return p;
  }

  private async extract(tarball: string, imageDir: string, root: string): Promise<string> {
    const tmp = join(this.dir, `.extract-${randomBytes(6).toString('hex')}`);
    mkdirSync(tmp, { recursive: true });
    try {
      const r = await run('tar', ['-x', '-f', tarball, '-C', tmp, '--numeric-owner'], { timeoutMs: 300_000 });
      if (r.code !== 0 || r.timedOut) {
        throw invalid(`image tarball ${tarball} cannot be extracted: ${r.stderr.trim() || r.error || (r.timedOut ? 'tar did not finish within 300 s' : `tar exited with ${r.code}`)}`);
      }
      mkdirSync(imageDir, { recursive: true });
      renameSync(tmp, root);
      return root;
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw err instanceof CorralError ? err : new CorralError('INTERNAL', `image ${tarball}: ${String(err)}`);
    }
  }
}
