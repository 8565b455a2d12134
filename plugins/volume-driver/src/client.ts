/**
 * VolumeClient: the Volumes contract over a running volume-driver's socket
 * (its admin API). For processes that must not open the host's volume state
 * themselves — the CLI, or an isolator in another process than the driver.
 * Errors come back as the CorralErrors the service raised.
 */
import http from 'node:http';
import { CorralError, ErrorCodes, type ErrorCode } from '../../../contracts/errors.js';
import { DEFAULT_SOCKET } from './config.js';
import type { DriverStatus } from './plugin/admin.js';
import type { SnapshotInfo, VolumeInfo, Volumes } from './types.js';

export class VolumeClient implements Volumes {
  constructor(
    readonly socketPath: string = process.env.CORRAL_VOLUME_SOCKET ?? DEFAULT_SOCKET,
    private readonly timeoutMs = 120_000,
  ) {}

  private request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          method,
          path,
          timeout: this.timeoutMs,
          headers: payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            let parsed: unknown;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              parsed = undefined;
            }
            if (status >= 200 && status < 300) return resolve(parsed as T);
            const e = (parsed ?? {}) as { code?: string; message?: string; Err?: string };
            const code = e.code && e.code in ErrorCodes ? (e.code as ErrorCode) : 'INTERNAL';
            reject(new CorralError(code, e.message ?? e.Err ?? `volume driver answered ${status}: ${text.slice(0, 200)}`));
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new CorralError('TIMEOUT', `volume driver at ${this.socketPath} did not answer within ${this.timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof CorralError) return reject(err);
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
          return reject(new CorralError('UNAVAILABLE', `no volume driver at ${this.socketPath} (${err.code}); start one with \`corral volume-driver\` or pass --socket`));
        }
        reject(new CorralError('UNAVAILABLE', `cannot reach the volume driver at ${this.socketPath}: ${err.message}`));
      });
      req.end(payload);
    });
  }

  private vol(name: string, sub = ''): string {
    return `/v1/volumes/${encodeURIComponent(name)}${sub}`;
  }

  status(): Promise<DriverStatus> {
    return this.request('GET', '/v1/status');
  }

  create(name: string, opts?: Record<string, string> | null): Promise<VolumeInfo> {
    return this.request('POST', '/v1/volumes', { name, options: opts ?? null });
  }

  async remove(name: string): Promise<void> {
    await this.request('DELETE', this.vol(name));
  }

  async mount(name: string, id: string): Promise<string> {
    return (await this.request<{ mountpoint: string }>('POST', this.vol(name, '/mount'), { id })).mountpoint;
  }

  async unmount(name: string, id: string): Promise<void> {
    await this.request('POST', this.vol(name, '/unmount'), { id });
  }

  async path(name: string): Promise<string | undefined> {
    return (await this.request<{ mountpoint: string | null }>('GET', this.vol(name, '/path'))).mountpoint ?? undefined;
  }

  get(name: string): Promise<VolumeInfo> {
    return this.request('GET', this.vol(name));
  }

  list(): Promise<VolumeInfo[]> {
    return this.request('GET', '/v1/volumes');
  }

  snapshot(name: string, snap: string): Promise<SnapshotInfo> {
    return this.request('POST', this.vol(name, '/snapshots'), { name: snap });
  }

  listSnapshots(name: string): Promise<SnapshotInfo[]> {
    return this.request('GET', this.vol(name, '/snapshots'));
  }

  async rollback(name: string, snap: string): Promise<void> {
    await this.request('POST', this.vol(name, `/snapshots/${encodeURIComponent(snap)}/rollback`));
  }

  async removeSnapshot(name: string, snap: string): Promise<void> {
    await this.request('DELETE', this.vol(name, `/snapshots/${encodeURIComponent(snap)}`));
  }

  resize(name: string, sizeBytes: number | string): Promise<VolumeInfo> {
    return this.request('POST', this.vol(name, '/resize'), { size: sizeBytes });
  }
}
