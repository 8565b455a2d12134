/**
 * A small client of the node daemon's unix-socket API, for the CLI, the lab
 * and tests (the CNI path itself goes through the C shim).
 */
import http from 'node:http';
import { CorralError } from '../../../../contracts/errors.js';

export function daemonRequest<T = unknown>(socketPath: string, method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ socketPath, method, path, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = undefined;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          parsed = text;
        }
        if ((res.statusCode ?? 500) >= 300) {
          const msg = typeof parsed === 'object' && parsed && 'message' in parsed ? String((parsed as { message: unknown }).message) : text;
          reject(new CorralError('UNAVAILABLE', `node daemon ${method} ${path}: HTTP ${res.statusCode}: ${msg}`));
        } else resolve(parsed as T);
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => reject(new CorralError('UNAVAILABLE', `cannot reach the node daemon at ${socketPath}: ${err.message}`)));
    req.end(payload);
  });
}
