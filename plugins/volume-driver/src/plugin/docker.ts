/**
 * The Docker volume plugin protocol (legacy v1, as dockerd 20.10 speaks it):
 * a thin adapter from its POST endpoints to the VolumeService. Every body is
 * validated; every failure answers {"Err": "..."}, which dockerd shows to the
 * user. Nothing waits for Activate: a plugin restarted under a running dockerd
 * is never re-activated and must answer at once.
 */
import type { ErrorFormatter, HttpServer, RequestContext } from '../../../../common/http/server.js';
import { parseInput, z } from '../../../../common/validate.js';
import type { VolumeInfo } from '../types.js';
import type { VolumeService } from '../service.js';

const dockerErrorFormatter: ErrorFormatter = (err) => ({
  status: err.httpStatus,
  body: JSON.stringify({ Err: err.message }),
  contentType: 'application/json',
});

const nameBody = z.looseObject({ Name: z.string() });
const createBody = z.looseObject({ Name: z.string(), Opts: z.record(z.string(), z.unknown()).nullish() });
/** Docker sends a fresh random ID per container start; very old clients send none. */
const mountBody = z.looseObject({ Name: z.string(), ID: z.string().max(256).optional() });

async function body<S extends z.ZodType>(ctx: RequestContext, schema: S, what: string): Promise<z.output<S>> {
  return parseInput(schema, await ctx.json(), `${what} request`);
}

function dockerVolume(v: VolumeInfo): Record<string, unknown> {
  const status: Record<string, unknown> = { backend: v.backend, scope: v.scope, refs: v.refs };
  if (v.sizeBytes !== undefined) status.sizeBytes = v.sizeBytes;
  if (v.fsType) status.fs = v.fsType;
  if (v.pool) status.pool = v.pool;
  if (v.attachedTo) status.attachedTo = v.attachedTo;
  return { Name: v.name, Mountpoint: v.mountpoint ?? '', CreatedAt: v.createdAt, Status: status };
}

export function registerDockerRoutes(server: HttpServer, service: VolumeService): void {
  const route = (path: string, handler: (ctx: RequestContext) => Promise<unknown>) => server.route('POST', path, handler, { name: path, formatError: dockerErrorFormatter });

  route('/Plugin.Activate', async () => ({ Implements: ['VolumeDriver'] }));
  route('/VolumeDriver.Capabilities', async () => ({ Capabilities: { Scope: service.scope } }));
  route('/VolumeDriver.Create', async (ctx) => {
    const b = await body(ctx, createBody, 'Create');
    await service.create(b.Name, (b.Opts ?? null) as Record<string, string> | null);
    return {};
  });
  route('/VolumeDriver.Remove', async (ctx) => {
    await service.remove((await body(ctx, nameBody, 'Remove')).Name);
    return {};
  });
  route('/VolumeDriver.Mount', async (ctx) => {
    const b = await body(ctx, mountBody, 'Mount');
    return { Mountpoint: await service.mount(b.Name, b.ID ?? '') };
  });
  route('/VolumeDriver.Unmount', async (ctx) => {
    const b = await body(ctx, mountBody, 'Unmount');
    await service.unmount(b.Name, b.ID ?? '');
    return {};
  });
  route('/VolumeDriver.Path', async (ctx) => ({ Mountpoint: (await service.path((await body(ctx, nameBody, 'Path')).Name)) ?? '' }));
  route('/VolumeDriver.Get', async (ctx) => ({ Volume: dockerVolume(await service.get((await body(ctx, nameBody, 'Get')).Name)) }));
  route('/VolumeDriver.List', async () => ({ Volumes: (await service.list()).map(dockerVolume) }));
}
