import { describe, it, expect } from 'vitest';
import { RecordTable } from '../../../discovery/src/records/table.js';
import { sanitizeLabel, addrLabel, instanceLabel } from '../../../discovery/src/records/names.js';
import { ClusterView } from '../../../discovery/src/cluster/view.js';
import { Catalog } from '../../../discovery/src/catalog/catalog.js';
import { parseDuration } from '../../../discovery/src/consul/http-util.js';
import { planPut, decodeEntry, encodeEnvelope, KV_PREFIX, type Entry } from '../../../discovery/src/consul/kv.js';
import type { OperatorEvent } from '../../../contracts/v1/operator-events.js';

const a = (ip: string) => ({ type: 'A' as const, ip });

describe('RecordTable', () => {
  it('merges owners per name, counts shared records once and publishes only changed names', () => {
    const t = new RecordTable('corral');
    t.set('t1', [{ name: 'web.fw.corral', rr: a('10.0.0.1') }]);
    t.set('t2', [
      { name: 'web.fw.corral', rr: a('10.0.0.2') },
      { name: 'x.addr.corral', rr: a('10.0.0.2') },
    ]);
    t.set('t3', [{ name: 'x.addr.corral', rr: a('10.0.0.2') }]);
    const first = new Map(t.flush());
    expect(first.get('web.fw.corral')).toEqual([a('10.0.0.1'), a('10.0.0.2')]);
    expect(first.get('fw.corral')).toEqual([]);
    expect(first.get('corral')).toEqual([]);
    t.delete('t2');
    const second = new Map(t.flush());
    expect(second.get('web.fw.corral')).toEqual([a('10.0.0.1')]);
    // still held by t3
    expect(second.has('x.addr.corral')).toBe(false);
    t.delete('t3');
    t.delete('t1');
    const third = new Map(t.flush());
    expect(third.get('web.fw.corral')).toBeNull();
    expect(third.get('fw.corral')).toBeNull();
    expect(third.get('x.addr.corral')).toBeNull();
    expect(t.nameCount).toBe(0);
  });

  it('ignores names outside the zone and coalesces a tick into one delta', async () => {
    const t = new RecordTable('corral');
    const seen: number[] = [];
    t.onChange((d) => seen.push(d.length));
    t.set('o', [{ name: 'example.com', rr: a('1.1.1.1') }]);
    for (let i = 0; i < 50; i++) t.set(`o${i}`, [{ name: `n${i}.corral`, rr: a('10.0.0.1') }]);
    await Promise.resolve();
    expect(seen).toEqual([51]);
  });
});

describe('labels', () => {
  it('sanitises as RFC 1123 and RFC 952', () => {
    expect(sanitizeLabel('My_Web.App')).toBe('my-web-app');
    expect(sanitizeLabel('--x--')).toBe('x');
    expect(sanitizeLabel('9lives')).toBe('9lives');
    expect(sanitizeLabel('9lives', 'rfc952')).toBe('lives');
    expect(sanitizeLabel('a'.repeat(70))).toHaveLength(63);
    expect(sanitizeLabel('abcdefghijklmnopqrstuvw-yz', 'rfc952')).toBe('abcdefghijklmnopqrstuvw');
    expect(sanitizeLabel('ÄÖ')).toBe('');
    expect(addrLabel('10.0.0.1')).toBe('0a000001');
    expect(addrLabel('fd00::1')).toBe('fd000000000000000000000000000001');
    expect(instanceLabel('kv', '1')).toBe('kv-1');
    // The index always survives shortening: instances 1 and 12 of a long name stay apart.
    expect(instanceLabel('abcdefghijklmnopqrstuvw', '12', 'rfc952')).toBe('abcdefghijklmnopqrstu-12');
    expect(instanceLabel('abcdefghijklmnopqrstuvw', '1', 'rfc952')).toBe('abcdefghijklmnopqrstuv-1');
  });

  it('parses Go durations', () => {
    expect(parseDuration('15s')).toBe(15_000);
    expect(parseDuration('1m30s')).toBe(90_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('10')).toBeUndefined();
    expect(parseDuration('1x')).toBeUndefined();
  });
});

describe('ClusterView', () => {
  const task = (state: string, extra: Record<string, unknown> = {}) => ({
    name: 'web',
    task_id: { value: 't1' },
    framework_id: { value: 'f1' },
    agent_id: { value: 'a1' },
    state,
    resources: [{ name: 'ports', type: 'RANGES', ranges: { range: [{ begin: 31000, end: 31001 }] } }],
    statuses: [],
    ...extra,
  });

  it('follows tasks through add, running with an IP, health and termination', () => {
    const changed: string[] = [];
    const v = new ClusterView({ task: (k) => changed.push(k), agent: () => undefined, framework: () => undefined });
    v.apply({ type: 'FRAMEWORK_ADDED', framework_added: { framework: { framework_info: { id: { value: 'f1' }, name: 'fw' } } } } as unknown as OperatorEvent);
    v.apply({ type: 'TASK_ADDED', task_added: { task: task('TASK_STAGING') } } as unknown as OperatorEvent);
    expect(v.tasks.get('f1/t1')?.ports.map((p) => p.number)).toEqual([31000, 31001]);
    const upd = (status: Record<string, unknown>, state: string) =>
      v.apply({ type: 'TASK_UPDATED', task_updated: { framework_id: { value: 'f1' }, state, status: { task_id: { value: 't1' }, state, ...status } } } as unknown as OperatorEvent);
    upd({ container_status: { network_infos: [{ ip_addresses: [{ ip_address: '100.96.0.9' }] }] } }, 'TASK_RUNNING');
    expect(v.tasks.get('f1/t1')).toMatchObject({ state: 'TASK_RUNNING', ips: ['100.96.0.9'], healthy: undefined });
    upd({ healthy: false }, 'TASK_RUNNING');
    expect(v.tasks.get('f1/t1')).toMatchObject({ healthy: false, ips: ['100.96.0.9'] });
    upd({}, 'TASK_FINISHED');
    expect(v.tasks.has('f1/t1')).toBe(false);
    expect(changed.length).toBe(4);
  });

  it('replaces its state on a new SUBSCRIBED and withdraws what vanished', () => {
    const changed: string[] = [];
    const v = new ClusterView({ task: (k) => changed.push(k), agent: () => undefined, framework: () => undefined });
    v.apply({ type: 'TASK_ADDED', task_added: { task: task('TASK_RUNNING') } } as unknown as OperatorEvent);
    v.apply({ type: 'SUBSCRIBED', subscribed: { get_state: { get_tasks: { tasks: [] }, get_agents: { agents: [] }, get_frameworks: { frameworks: [] } }, heartbeat_interval_seconds: 1 } });
    expect(v.tasks.size).toBe(0);
    expect(changed).toEqual(['f1/t1', 'f1/t1']);
  });
});

describe('Catalog', () => {
  it('raises its index on changes only and wakes blocked readers', async () => {
    const c = new Catalog('dc1', 10);
    const start = c.index;
    const woke = c.waitForChange(start, 5000);
    c.upsertNode('n1', '10.0.0.1', 'catalog');
    await woke;
    expect(c.index).toBe(start + 1);
    c.upsertNode('n1', '10.0.0.1', 'catalog');
    expect(c.index).toBe(start + 1);
    c.upsertService('n1', { ID: 's1', Service: 'web', Tags: ['v1'] }, 'catalog');
    c.upsertCheck('n1', { CheckID: 'c1', Name: 'c', Status: 'critical', ServiceID: 's1' }, 'catalog');
    expect(c.instances('web')[0]?.checks.map((x) => x.Status)).toEqual(['critical']);
    expect(c.services()).toEqual({ web: ['v1'] });
    c.removeSource('n1', 'catalog');
    expect(c.node('n1')).toBeUndefined();
  });
});

describe('KV put planning', () => {
  const entry = (h: Entry['header'], modifyIndex = 5): Entry => ({ key: 'k', header: h, value: Buffer.from('v'), createIndex: 1, modifyIndex });

  it('implements cas, acquire, release and lock-delay', () => {
    const now = 1_000_000;
    expect(planPut('k', undefined, 0, Buffer.from('x'), { cas: 0 }, now).ok).toBe(true);
    expect(planPut('k', entry({ f: 0, l: 0 }), 5, Buffer.from('x'), { cas: 0 }, now).ok).toBe(false);
    expect(planPut('k', entry({ f: 0, l: 0 }), 5, Buffer.from('x'), { cas: 5 }, now).ok).toBe(true);
    const acq = planPut('k', entry({ f: 0, l: 0 }), 5, Buffer.from('x'), { acquire: 's1' }, now);
    expect(acq.ok).toBe(true);
    const put = acq.ops[0] as { value: Buffer };
    expect(decodeEntry({ key: KV_PREFIX + 'k', value: put.value, createRevision: 1, modRevision: 6, version: 2, lease: 0 }).header).toEqual({ f: 0, l: 1, s: 's1' });
    expect(planPut('k', entry({ f: 0, l: 1, s: 's1' }), 5, Buffer.from('x'), { acquire: 's2' }, now).ok).toBe(false);
    expect(planPut('k', entry({ f: 0, l: 1, s: 's1' }), 5, Buffer.from('x'), { release: 's2' }, now).ok).toBe(false);
    expect(planPut('k', entry({ f: 0, l: 1, s: 's1' }), 5, Buffer.from('x'), { release: 's1' }, now).ok).toBe(true);
    expect(planPut('k', entry({ f: 0, l: 1, d: now + 1000 }), 5, Buffer.from('x'), { acquire: 's2' }, now).ok).toBe(false);
    expect(planPut('k', entry({ f: 0, l: 1, d: now - 1 }), 5, Buffer.from('x'), { acquire: 's2' }, now).ok).toBe(true);
  });

  it('round-trips the envelope', () => {
    const buf = encodeEnvelope({ f: 42, l: 3, s: 'abc' }, Buffer.from([0, 1, 2, 255]));
    const e = decodeEntry({ key: KV_PREFIX + 'a/b', value: buf, createRevision: 2, modRevision: 9, version: 1, lease: 0 });
    expect(e).toMatchObject({ key: 'a/b', header: { f: 42, l: 3, s: 'abc' }, createIndex: 2, modifyIndex: 9 });
    expect([...e.value]).toEqual([0, 1, 2, 255]);
  });
});
