/**
 * Allocator benchmarks (pure library, no I/O), after Mesos's
 * HierarchicalAllocator benchmarks:
 *  - decline: 2,000 agents × 200 frameworks; every framework declines every
 *    offer with a long filter; time per allocation round (Mesos 0.28: 2.9 s).
 *  - roles: 10,000 agents × 1,000 frameworks in 10 weighted roles; full round.
 *  - wide: 50,000 agents × 1 framework; full round.
 * Usage: node dist/bench/allocator.js [--json]
 */
import { Allocator } from '../core-scheduler/src/allocator/allocator.js';
import { parseResources } from '../core-scheduler/src/resources/parse.js';

const AGENT = 'cpus:24;mem:65536;disk:1048576;ports:[31000-32000]';

interface Figure {
  scenario: string;
  metric: string;
  value: number;
  unit: string;
  goal?: string;
  peer?: string;
}
const figures: Figure[] = [];
const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

function build(agents: number, frameworks: number, roles: number): Allocator {
  const a = new Allocator();
  const total = parseResources(AGENT);
  for (let r = 0; r < roles; r++) if (roles > 1) a.setWeight(`role${r}`, r + 1);
  for (let i = 0; i < agents; i++) a.addAgent(`agent-${i}`, total);
  for (let f = 0; f < frameworks; f++) a.addFramework(`fw-${f}`, { roles: [roles > 1 ? `role${f % roles}` : '*'] });
  return a;
}

function decline(): void {
  const alloc = build(2000, 200, 1);
  let now = 0;
  const rounds: number[] = [];
  let offers = 0;
  // Every framework declines everything with a one-hour filter; run until no agent is offered any more.
  for (let round = 0; round < 400; round++) {
    const t0 = process.hrtime.bigint();
    const decisions = alloc.allocate(now);
    rounds.push(ms(t0));
    offers += decisions.length;
    for (const d of decisions) alloc.recover(d.frameworkId, d.agentId, d.role, d.resources, now + 3_600_000);
    now += 1000;
    if (decisions.length === 0 && round > 2) break;
  }
  const steady: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = process.hrtime.bigint();
    alloc.allocate(now);
    steady.push(ms(t0));
    now += 1000;
  }
  figures.push({
    scenario: 'decline 2000×200',
    metric: `round while declining (mean of ${rounds.length} rounds, ${offers} offers)`,
    value: rounds.reduce((a, b) => a + b, 0) / rounds.length,
    unit: 'ms',
    goal: '≤ 20 ms',
    peer: 'Mesos 0.28: 2900 ms',
  });
  figures.push({ scenario: 'decline 2000×200', metric: 'round while declining (max)', value: Math.max(...rounds), unit: 'ms', goal: '≤ 20 ms', peer: 'Mesos 0.28: 2900 ms' });
  figures.push({ scenario: 'decline 2000×200', metric: 'round, all filtered (p50)', value: pct(steady, 50), unit: 'ms', goal: '≤ 20 ms', peer: 'Mesos 0.28: 2900 ms' });
}

function fullRound(name: string, agents: number, frameworks: number, roles: number): void {
  const t0 = process.hrtime.bigint();
  const alloc = build(agents, frameworks, roles);
  const setup = ms(t0);
  const t1 = process.hrtime.bigint();
  const decisions = alloc.allocate(0);
  const first = ms(t1);
  // Everything comes back (declined without filter); the next round re-offers it all.
  for (const d of decisions) alloc.recover(d.frameworkId, d.agentId, d.role, d.resources);
  const again: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = process.hrtime.bigint();
    const ds = alloc.allocate(i);
    again.push(ms(t));
    for (const d of ds) alloc.recover(d.frameworkId, d.agentId, d.role, d.resources);
  }
  figures.push({ scenario: name, metric: `first full round (${decisions.length} offers)`, value: first, unit: 'ms', goal: '≤ 100 ms' });
  figures.push({ scenario: name, metric: 'full round, everything recovered (p50 of 5)', value: pct(again, 50), unit: 'ms', goal: '≤ 100 ms' });
  figures.push({ scenario: name, metric: 'setup (add agents and frameworks)', value: setup, unit: 'ms' });
}

decline();
fullRound('10000 agents × 1000 frameworks, 10 roles', 10_000, 1000, 10);
fullRound('50000 agents × 1 framework', 50_000, 1, 1);

if (process.argv.includes('--json')) console.log(JSON.stringify(figures, null, 2));
else {
  for (const f of figures) console.log(`${f.scenario.padEnd(42)} ${f.metric.padEnd(58)} ${f.value.toFixed(2).padStart(9)} ${f.unit}  ${f.goal ?? ''}  ${f.peer ?? ''}`);
}
