import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { Allocator } from '../../../core-scheduler/src/allocator/allocator.js';
import { Resources } from '../../../core-scheduler/src/resources/resources.js';
import { R, assertBalanced } from './helpers.js';

const ROLES = ['*', 'r0', 'r1', 'r2'];

type Cmd =
  | { t: 'addAgent'; cpus: number; mem: number; reservedRole: number; reservedCpus: number }
  | { t: 'removeAgent'; i: number }
  | { t: 'addFramework'; roles: number[]; revocable: boolean }
  | { t: 'removeFramework'; i: number }
  | { t: 'allocate' }
  | { t: 'accept'; i: number; cpus: number }
  | { t: 'decline'; i: number; refuse: number }
  | { t: 'finish'; i: number }
  | { t: 'suppress'; i: number }
  | { t: 'revive'; i: number }
  | { t: 'weight'; role: number; w: number }
  | { t: 'reserve'; i: number }
  | { t: 'tick'; ms: number };

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  fc.record({
    t: fc.constant('addAgent' as const),
    cpus: fc.integer({ min: 1, max: 16 }),
    mem: fc.integer({ min: 1, max: 16 }),
    reservedRole: fc.integer({ min: 0, max: 3 }),
    reservedCpus: fc.integer({ min: 0, max: 4 }),
  }),
  fc.record({ t: fc.constant('removeAgent' as const), i: fc.nat() }),
  fc.record({ t: fc.constant('addFramework' as const), roles: fc.uniqueArray(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 3 }), revocable: fc.boolean() }),
  fc.record({ t: fc.constant('removeFramework' as const), i: fc.nat() }),
  fc.constant({ t: 'allocate' as const }),
  fc.constant({ t: 'allocate' as const }),
  fc.record({ t: fc.constant('accept' as const), i: fc.nat(), cpus: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ t: fc.constant('decline' as const), i: fc.nat(), refuse: fc.constantFrom(0, 1000, 5000) }),
  fc.record({ t: fc.constant('finish' as const), i: fc.nat() }),
  fc.record({ t: fc.constant('suppress' as const), i: fc.nat() }),
  fc.record({ t: fc.constant('revive' as const), i: fc.nat() }),
  fc.record({ t: fc.constant('weight' as const), role: fc.integer({ min: 0, max: 3 }), w: fc.integer({ min: 1, max: 5 }) }),
  fc.record({ t: fc.constant('reserve' as const), i: fc.nat() }),
  fc.record({ t: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 3000 }) }),
);

interface Held {
  fw: string;
  agent: string;
  role: string;
  res: Resources;
}

function noNegatives(alloc: Allocator): void {
  for (const id of alloc.agentIds()) {
    const v = alloc.agentView(id)!;
    for (const e of v.available) if (e.kind === 'SCALAR' && e.scalar < 0) throw new Error(`negative ${e.name} on ${id}`);
  }
}

describe('allocator properties', () => {
  it('keeps exact books through any sequence of events', () => {
    fc.assert(
      fc.property(fc.array(cmd, { minLength: 1, maxLength: 120 }), (cmds) => {
        const alloc = new Allocator();
        let now = 0;
        let agentSeq = 0;
        let fwSeq = 0;
        const agents: string[] = [];
        const fws: string[] = [];
        let offers: Held[] = [];
        let tasks: Held[] = [];
        const pick = <T>(xs: T[], i: number): T | undefined => (xs.length ? xs[i % xs.length] : undefined);
        for (const c of cmds) {
          switch (c.t) {
            case 'addAgent': {
              const id = `a${agentSeq++}`;
              const role = ROLES[c.reservedRole]!;
              const text = `cpus:${c.cpus};mem:${c.mem * 512}` + (role !== '*' && c.reservedCpus ? `;cpus(${role}):${c.reservedCpus};mem(${role}):${c.reservedCpus * 256}` : '');
              const rev = c.reservedCpus % 2 ? new Resources([Resources.scalarEntry('cpus', 1, { revocable: true })]) : undefined;
              alloc.addAgent(id, R(text), rev ? { revocable: rev } : {});
              agents.push(id);
              break;
            }
            case 'removeAgent': {
              const id = pick(agents, c.i);
              if (!id) break;
              alloc.removeAgent(id);
              agents.splice(agents.indexOf(id), 1);
              offers = offers.filter((o) => o.agent !== id);
              tasks = tasks.filter((o) => o.agent !== id);
              break;
            }
            case 'addFramework': {
              const id = `f${fwSeq++}`;
              alloc.addFramework(id, { roles: c.roles.map((r) => ROLES[r]!), revocable: c.revocable });
              fws.push(id);
              break;
            }
            case 'removeFramework': {
              const id = pick(fws, c.i);
              if (!id) break;
              alloc.removeFramework(id);
              fws.splice(fws.indexOf(id), 1);
              offers = offers.filter((o) => o.fw !== id);
              tasks = tasks.filter((o) => o.fw !== id);
              break;
            }
            case 'allocate':
              for (const d of alloc.allocate(now)) {
                offers.push({ fw: d.frameworkId, agent: d.agentId, role: d.role, res: d.resources });
                // Nothing is offered twice: what outstanding offers and tasks hold on an agent fits in it.
                // (A framework may hold several offers of one agent and role at once, as in Mesos.)
                const held = new Resources();
                for (const h of [...offers, ...tasks]) if (h.agent === d.agentId) held.add(h.res);
                const v = alloc.agentView(d.agentId)!;
                expect(v.total.plus(v.revocable).contains(held), `${d.agentId} holds ${held} of ${v.total.plus(v.revocable)}`).toBe(true);
              }
              break;
            case 'accept': {
              const o = pick(offers, c.i);
              if (!o) break;
              offers.splice(offers.indexOf(o), 1);
              const want = o.res.filter((e) => e.kind === 'SCALAR' && e.name === 'cpus' && !e.revocable);
              const cpus = Math.min(c.cpus, want.scalar('cpus'));
              let task = new Resources();
              for (const e of want) {
                const take = Math.min(e.scalar, cpus * 1000 - task.scalar('cpus') * 1000);
                if (take > 0) task.addEntry(e.withScalar(take));
              }
              if (task.isEmpty()) task = new Resources();
              alloc.recover(o.fw, o.agent, o.role, o.res.minus(task), now + 1000);
              if (!task.isEmpty()) tasks.push({ ...o, res: task });
              break;
            }
            case 'decline': {
              const o = pick(offers, c.i);
              if (!o) break;
              offers.splice(offers.indexOf(o), 1);
              alloc.recover(o.fw, o.agent, o.role, o.res, c.refuse ? now + c.refuse : undefined);
              break;
            }
            case 'finish': {
              const t = pick(tasks, c.i);
              if (!t) break;
              tasks.splice(tasks.indexOf(t), 1);
              alloc.recover(t.fw, t.agent, t.role, t.res);
              break;
            }
            case 'suppress': {
              const id = pick(fws, c.i);
              if (id) alloc.suppress(id);
              break;
            }
            case 'revive': {
              const id = pick(fws, c.i);
              if (id) alloc.revive(id);
              break;
            }
            case 'weight':
              alloc.setWeight(ROLES[c.role]!, c.w);
              break;
            case 'reserve': {
              // RESERVE inside an offer: unreserved CPUs become reserved to the offer's role.
              const o = pick(offers, c.i);
              if (!o || o.role === '*') break;
              const src = o.res.filter((e) => e.name === 'cpus' && !e.reserved && !e.revocable);
              if (src.isEmpty()) break;
              const dst = src.map(() => ({ reservations: [{ type: 'DYNAMIC' as const, role: o.role, principal: 'p' }] }));
              alloc.convertAllocated(o.fw, o.agent, o.role, src, dst);
              o.res = o.res.minus(src).plus(dst);
              break;
            }
            case 'tick':
              now += c.ms;
              break;
          }
          assertBalanced(alloc);
          noNegatives(alloc);
          // Shadow and allocator agree on what each framework holds.
          for (const id of agents) {
            const view = alloc.agentView(id)!;
            const expected = new Map<string, Resources>();
            for (const h of [...offers, ...tasks]) {
              if (h.agent !== id) continue;
              const k = `${h.fw}/${h.role}`;
              expected.set(k, (expected.get(k) ?? new Resources()).add(h.res));
            }
            for (const [fw, byRole] of view.allocated) {
              for (const [role, res] of byRole) {
                const want = expected.get(`${fw}/${role}`) ?? new Resources();
                if (!res.equals(want)) throw new Error(`${id} ${fw}/${role}: allocator ${res} shadow ${want}`);
                expected.delete(`${fw}/${role}`);
              }
            }
            for (const [k, res] of expected) if (!res.isEmpty()) throw new Error(`${id} ${k}: shadow holds ${res} the allocator lost`);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('gives the next agent to the lowest weighted dominant share', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 4, maxLength: 4 }),
        fc.array(fc.record({ role: fc.integer({ min: 0, max: 3 }) }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.record({ cpus: fc.integer({ min: 1, max: 8 }), mem: fc.integer({ min: 1, max: 8 }) }), { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (weights, frameworks, agentSpecs, keep) => {
          const alloc = new Allocator();
          weights.forEach((w, i) => alloc.setWeight(ROLES[i]!, w));
          frameworks.forEach((f, i) => alloc.addFramework(`f${i}`, { roles: [ROLES[f.role]!] }));
          // Build up uneven allocations: frameworks keep some offers, return others.
          agentSpecs.forEach((a, i) => alloc.addAgent(`a${i}`, R(`cpus:${a.cpus};mem:${a.mem * 1024}`)));
          let k = 0;
          for (const d of alloc.allocate(0)) if ((keep[k++] ?? 0) % 3 === 0) alloc.recover(d.frameworkId, d.agentId, d.role, d.resources);
          // Add one fresh agent (it changes the totals shares are relative to), snapshot shares, offer it.
          alloc.addAgent('fresh', R('cpus:1;mem:1024'));
          const roleShares = new Map(ROLES.map((r) => [r, alloc.roleShare(r)]));
          const fwShares = frameworks.map((f, i) => alloc.frameworkShare(`f${i}`, ROLES[f.role]!));
          const fwShare = (i: number): number => fwShares[i]!;
          const [d] = alloc.allocate(1, ['fresh']);
          expect(d).toBeDefined();
          const activeRoles = new Set(frameworks.map((f) => ROLES[f.role]!));
          const minRole = Math.min(...[...activeRoles].map((r) => roleShares.get(r)!));
          expect(roleShares.get(d!.role)!).toBeCloseTo(minRole, 9);
          const inRole = frameworks.map((f, i) => ({ f, i })).filter(({ f }) => ROLES[f.role] === d!.role);
          const minFw = Math.min(...inRole.map(({ i }) => fwShare(i)));
          expect(fwShare(Number(d!.frameworkId.slice(1)))).toBeLessThanOrEqual(minFw + 1e-9);
        },
      ),
      { numRuns: 300 },
    );
  });
});
