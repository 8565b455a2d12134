/**
 * RESERVE, UNRESERVE, CREATE and DESTROY as resource conversions: what they
 * consume and what they turn it into, with the checks both the scheduler API
 * (inside ACCEPT) and the operator API apply.
 */
import { CorralError } from '../../../contracts/errors.js';
import { Resources, type Reservation } from '../resources/resources.js';

export type ConversionKind = 'RESERVE' | 'UNRESERVE' | 'CREATE' | 'DESTROY';

interface ConversionContext {
  /** The role the resources must be for (the offer's role); any role when undefined (operator). */
  role: string | undefined;
  /** Principal recorded on new reservations. */
  principal: string | undefined;
  /** "role/persistence-id" of volumes on the agent, kept up to date as conversions are planned. */
  volumeIds: Set<string>;
  where: string;
}

interface Conversion {
  consumed: Resources;
  converted: Resources;
}

const bad = (msg: string): CorralError => new CorralError('INVALID_ARGUMENT', msg);

const pop = (res: Resources): Resources => res.map((e) => ({ reservations: e.reservations.slice(0, -1) }));
const withoutVolume = (res: Resources): Resources => res.map((e) => ({ disk: e.disk?.source ? { source: e.disk.source } : undefined }));

export function volumeIdsOf(total: Resources): Set<string> {
  const ids = new Set<string>();
  for (const e of total) if (e.disk?.persistence) ids.add(`${Resources.reservationRole(e)}/${e.disk.persistence.id}`);
  return ids;
}

export function conversionFor(kind: ConversionKind, asked: Resources, ctx: ConversionContext): Conversion {
  const { where } = ctx;
  if (asked.isEmpty()) throw bad(`${where}: no resources given`);
  switch (kind) {
    case 'RESERVE': {
      const converted = asked.map((e) => {
        const top = e.reservations.at(-1);
        if (!top) throw bad(`${where}: resource ${e.name} has no reservation to make`);
        if (top.role === '*') throw bad(`${where}: cannot reserve for the "*" role`);
        if (ctx.role !== undefined && top.role !== ctx.role) throw bad(`${where}: cannot reserve for role "${top.role}" with offers for role "${ctx.role}"`);
        if (top.principal !== undefined && top.principal !== ctx.principal) throw bad(`${where}: reservation principal "${top.principal}" is not the caller's principal "${ctx.principal}"`);
        if (e.disk?.persistence) throw bad(`${where}: reserve plain disk, then CREATE the volume`);
        const r: Reservation = { type: 'DYNAMIC', role: top.role, ...(ctx.principal !== undefined ? { principal: ctx.principal } : {}), ...(top.labels ? { labels: top.labels } : {}) };
        return { reservations: [...e.reservations.slice(0, -1), r] };
      });
      return { consumed: pop(converted), converted };
    }
    case 'UNRESERVE': {
      for (const e of asked) {
        const top = e.reservations.at(-1);
        if (!top) throw bad(`${where}: resource ${e.name} is not reserved`);
        if (top.type !== 'DYNAMIC') throw bad(`${where}: resource ${e.name} is statically reserved; only dynamic reservations can be undone`);
        if (ctx.role !== undefined && top.role !== ctx.role) throw bad(`${where}: resource ${e.name} is reserved to "${top.role}", not "${ctx.role}"`);
        if (e.disk?.persistence) throw bad(`${where}: resource ${e.name} is a persistent volume; DESTROY it first`);
      }
      return { consumed: asked, converted: pop(asked) };
    }
    case 'CREATE': {
      for (const e of asked) {
        const p = e.disk?.persistence?.id;
        const path = e.disk?.volume?.container_path;
        if (e.name !== 'disk' || e.kind !== 'SCALAR') throw bad(`${where}: persistent volumes are made of disk`);
        if (!p || !path) throw bad(`${where}: a volume needs disk.persistence.id and disk.volume.container_path`);
        if (path.startsWith('/') || path.split('/').includes('..')) throw bad(`${where}: container_path "${path}" must be relative and stay inside the sandbox`);
        if (!e.reserved) throw bad(`${where}: volume ${p} must be on reserved disk; RESERVE it first`);
        const role = Resources.reservationRole(e)!;
        if (ctx.role !== undefined && role !== ctx.role) throw bad(`${where}: volume ${p} is on disk reserved to "${role}", not "${ctx.role}"`);
        const key = `${role}/${p}`;
        if (ctx.volumeIds.has(key)) throw bad(`${where}: persistence id "${p}" is already used on this agent for role ${role}`);
        ctx.volumeIds.add(key);
      }
      return { consumed: withoutVolume(asked), converted: asked };
    }
    case 'DESTROY': {
      for (const e of asked) {
        if (!e.disk?.persistence) throw bad(`${where}: ${e.name} is not a persistent volume`);
        ctx.volumeIds.delete(`${Resources.reservationRole(e)}/${e.disk.persistence.id}`);
      }
      return { consumed: asked, converted: withoutVolume(asked) };
    }
  }
}
