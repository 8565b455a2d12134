/**
 * The agent's resources: detected figures, the operator's `--resources`
 * trusted as given (more or less than the hardware), what exceeds the host
 * reported, what tasks are checked against, and invalid overrides refused.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, tmpdir, totalmem } from 'node:os';
import { agentResources, hostResources, overcommitted, physicalResources, taskCapacity } from '../../../core-scheduler/src/agent/host-resources.js';
import { parseResources } from '../../../core-scheduler/src/resources/parse.js';

let workDir: string;
const cores = cpus().length;
const ramMb = Math.floor(totalmem() / (1024 * 1024));

beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), 'corral-res-'));
});
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

describe('agent resources', () => {
  it('detects the hardware and advertises it with memory and disk left to the host', () => {
    const r = agentResources(workDir, undefined);
    expect(r.physical.cpus).toBe(cores);
    expect(r.physical.memMb).toBe(ramMb);
    expect(r.advertised.scalar('cpus')).toBe(cores);
    expect(r.advertised.scalar('mem')).toBeLessThan(ramMb);
    expect(r.advertised.scalar('disk')).toBeLessThan(r.physical.diskMb);
    expect(r.overcommitted).toEqual([]);
  });

  it('trusts an override above the hardware, and says which resource exceeds it by how much', () => {
    const r = agentResources(workDir, `cpus:${cores + 7};mem:${ramMb * 2}`);
    expect(r.advertised.scalar('cpus')).toBe(cores + 7);
    expect(r.advertised.scalar('mem')).toBe(ramMb * 2);
    expect(r.advertised.scalar('disk')).toBeGreaterThan(0); // not overridden: still detected
    expect(r.overcommitted).toEqual([
      { resource: 'cpus', advertised: cores + 7, physical: cores },
      { resource: 'mem', advertised: ramMb * 2, physical: ramMb },
    ]);
    expect(taskCapacity(r.advertised)).toEqual({ cpus: cores + 7, memMb: ramMb * 2, gpus: 0 });
  });

  it('counts static reservations with unreserved resources, against the hardware and for tasks', () => {
    const advertised = hostResources(workDir, `cpus:${cores};cpus(db):2;mem:1024`);
    expect(overcommitted(advertised, physicalResources(workDir))).toEqual([{ resource: 'cpus', advertised: cores + 2, physical: cores }]);
    expect(taskCapacity(advertised).cpus).toBe(cores + 2);
  });

  it('an override below the hardware (headroom) is not overcommit, and caps what tasks may ask for', () => {
    const r = agentResources(workDir, 'cpus:0.5;mem:256');
    expect(r.overcommitted).toEqual([]);
    expect(taskCapacity(r.advertised)).toEqual({ cpus: 0.5, memMb: 256, gpus: 0 });
  });

  it.each([
    ['negative', 'cpus:-1', /cpus:-1.*non-negative number/],
    ['NaN', 'cpus:NaN', /non-negative number/],
    ['non-numeric', 'mem:lots', /non-negative number/],
    ['infinite', 'cpus:Infinity', /non-negative number/],
    ['malformed', 'cpus=4', /expected name\[\(role\)\]:value/],
    ['GPUs without GPU isolation', 'gpus:1', /cannot advertise gpus/],
  ])('refuses a %s override', (_what, text, pattern) => {
    expect(() => agentResources(workDir, text)).toThrow(pattern);
  });

  it('an overcommit list is empty when the advertised figures equal the hardware', () => {
    const p = physicalResources(workDir);
    expect(overcommitted(parseResources(`cpus:${p.cpus};mem:${p.memMb};disk:${p.diskMb}`), p)).toEqual([]);
  });
});
