/**
 * The admin API on the plugin's socket, for `corral volume …` and for
 * processes that use a host's volumes through VolumeClient (the isolator when
 * it does not embed the service). JSON in and out, errors as {code, message}.
 *
 *   GET    /v1/status
 *   GET    /v1/volumes                      POST /v1/volumes {name, options}
 *   GET    /v1/volumes/NAME                 DELETE /v1/volumes/NAME
 *   GET    /v1/volumes/NAME/path
 *   POST   /v1/volumes/NAME/mount {id}      POST /v1/volumes/NAME/unmount {id}
 *   POST   /v1/volumes/NAME/resize {size}
 *   GET    /v1/volumes/NAME/snapshots       POST /v1/volumes/NAME/snapshots {name}
 *   DELETE /v1/volumes/NAME/snapshots/SNAP  POST /v1/volumes/NAME/snapshots/SNAP/rollback
 */
import { CorralError, notFound } from '../../../../contracts/errors.js';
import type { HttpServer, RequestContext } from '../../../../common/http/server.js';
import { parseInput, z } from '../../../../common/validate.js';
import { checkName } from '../options.js';
import type { VolumeService } from '../service.js';

export interface DriverStatus {
  hostId: string;
  defaultBackend: string;
  scope: string;
  backends: Record<string, string>;
  attachMethod?: string;
  /** Detaches that failed and are being retried. */
  pendingDetaches?: Array<{ volume: string; failures: number; retryInMs: number; lastError: string }>;
}

const createBody = z.object({ name: z.string(), options: z.record(z.string(), z.string()).nullish() });
const idBody = z.object({ id: z.string().max(256) });
const resizeBody = z.object({ size: z.union([z.string().min(1), z.number()]) });
const snapBody = z.object({ name: z.string() });

async function json<S extends z.ZodType>(ctx: RequestContext, schema: S, what: string): Promise<z.output<S>> {
  return parseInput(schema, await ctx.json(), what);
}

function segments(rest: string): string[] {
  try {
    return rest.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    throw new CorralError('INVALID_ARGUMENT', 'malformed path');
  }
}

export function registerAdminRoutes(server: HttpServer, service: VolumeService, status: () => DriverStatus): void {
  server.route('GET', '/v1/status', () => status());
  server.route('GET', '/v1/volumes', () => service.list());
  server.route('POST', '/v1/volumes', async (ctx) => {
    const b = await json(ctx, createBody, 'create request');
    const info = await service.create(b.name, b.options ?? null);
    ctx.res.statusCode = 201;
    return info;
  });
  server.route('*', '/v1/volumes/*', async (ctx) => {
    const [name = '', sub, snap, action, ...extra] = segments(ctx.rest);
    checkName(name);
    if (snap !== undefined) checkName(snap, 'snapshot name');
    const shape = extra.length ? 'unknown' : [sub, snap === undefined ? undefined : 'SNAP', action].filter((p) => p !== undefined).join('/');
    switch (`${ctx.method} ${shape}`) {
      case 'GET ':
        return service.get(name);
      case 'DELETE ':
        await service.remove(name);
        return undefined;
      case 'GET path':
        return { mountpoint: (await service.path(name)) ?? null };
      case 'POST mount':
        return { mountpoint: await service.mount(name, (await json(ctx, idBody, 'mount request')).id) };
      case 'POST unmount':
        await service.unmount(name, (await json(ctx, idBody, 'unmount request')).id);
        return undefined;
      case 'POST resize':
        return service.resize(name, (await json(ctx, resizeBody, 'resize request')).size);
      case 'GET snapshots':
        return service.listSnapshots(name);
      case 'POST snapshots': {
        const info = await service.snapshot(name, (await json(ctx, snapBody, 'snapshot request')).name);
        ctx.res.statusCode = 201;
        return info;
      }
      case 'DELETE snapshots/SNAP':
        await service.removeSnapshot(name, snap!);
        return undefined;
      case 'POST snapshots/SNAP/rollback':
        await service.rollback(name, snap!);
        return undefined;
      default:
        throw notFound(`no such endpoint: ${ctx.method} /v1/volumes/${ctx.rest}`);
    }
  });
}
