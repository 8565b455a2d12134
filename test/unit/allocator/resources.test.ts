import { describe, expect, it } from 'vitest';
import { Resources, sameV1Scalars } from '../../../core-scheduler/src/resources/resources.js';
import { withLatestStatus } from '../../../core-scheduler/src/master/records.js';
import type { V1Resource, V1TaskStatus } from '../../../contracts/v1/v1.js';
import { parseResources } from '../../../core-scheduler/src/resources/parse.js';

const text = (r: Resources): string => r.toString();

describe('Resources copy on write', () => {
  it('keeps a clone and its source apart whichever side changes', () => {
    const source = parseResources('cpus:4;mem:1024;ports:[31000-31010]');
    const offer = source.clone();
    source.subtract(parseResources('cpus:1;ports:[31000-31000]'));
    expect(offer.scalar('cpus')).toBe(4);
    expect(offer.contains(parseResources('ports:[31000-31000]'))).toBe(true);
    expect(source.scalar('cpus')).toBe(3);
    const again = source.clone();
    again.add(parseResources('mem:1'));
    expect(source.scalar('mem')).toBe(1024);
    expect(again.scalar('mem')).toBe(1025);
    // A clone of a clone, both changed.
    const a = offer.clone();
    const b = a.clone();
    a.add(parseResources('cpus:1'));
    b.subtract(parseResources('cpus:1'));
    expect([offer.scalar('cpus'), a.scalar('cpus'), b.scalar('cpus')]).toEqual([4, 5, 3]);
  });

  it('never lets one empty Resources leak into another', () => {
    const x = new Resources();
    const y = new Resources();
    x.add(parseResources('cpus:2'));
    expect(y.isEmpty()).toBe(true);
    expect(new Resources().isEmpty()).toBe(true);
    expect(text(x.filter((e) => e.name === 'cpus'))).toBe(text(parseResources('cpus:2')));
    expect(new Resources().filter(() => true).isEmpty()).toBe(true);
  });

  it('sums scalars by name id, reserved ones included', () => {
    const r = parseResources('cpus:2;cpus(ads):1.5;mem:64');
    const cpus = [...r].find((e) => e.name === 'cpus')!.nid;
    expect(r.scalarById(cpus)).toBe(3500);
  });
});

describe('sharing the resources of identical tasks', () => {
  const cpu = (value: number, extra: Partial<V1Resource> = {}): V1Resource => ({ name: 'cpus', type: 'SCALAR', scalar: { value }, ...extra });
  const mem: V1Resource = { name: 'mem', type: 'SCALAR', scalar: { value: 256 } };

  it('calls two lists the same only when they certainly parse alike', () => {
    expect(sameV1Scalars([cpu(1), mem], [cpu(1), { ...mem, scalar: { value: 256 } }])).toBe(true);
    expect(sameV1Scalars([cpu(1, { role: '*', allocation_info: { role: 'web' } })], [cpu(1, { role: '*', allocation_info: { role: 'web' } })])).toBe(true);
    expect(sameV1Scalars([cpu(1), mem], [cpu(2), mem])).toBe(false);
    expect(sameV1Scalars([cpu(1), mem], [mem, cpu(1)])).toBe(false);
    expect(sameV1Scalars([cpu(1)], [cpu(1), mem])).toBe(false);
    expect(sameV1Scalars([cpu(1)], [cpu(1, { role: 'ads' })])).toBe(false);
    expect(sameV1Scalars([cpu(1, { allocation_info: { role: 'a' } })], [cpu(1, { allocation_info: { role: 'b' } })])).toBe(false);
    // Anything but a plain scalar is left to the parser.
    const reserved = cpu(1, { reservations: [{ type: 'DYNAMIC', role: 'ads', principal: 'p' }] });
    expect(sameV1Scalars([reserved], [{ ...reserved }])).toBe(false);
    expect(sameV1Scalars([cpu(1, { revocable: {} })], [cpu(1, { revocable: {} })])).toBe(false);
    const ports: V1Resource = { name: 'ports', type: 'RANGES', ranges: { range: [{ begin: 1, end: 2 }] } };
    expect(sameV1Scalars([ports], [{ ...ports }])).toBe(false);
  });

  it('knows a clone shares its entries until either side changes', () => {
    const a = Resources.fromV1([cpu(1), mem]);
    const b = a.clone();
    expect(b.sharesEntriesWith(a)).toBe(true);
    b.add(Resources.fromV1([cpu(1)]));
    expect(b.sharesEntriesWith(a)).toBe(false);
    expect([a.scalar('cpus'), b.scalar('cpus')]).toEqual([1, 2]);
    expect(Resources.fromV1([cpu(1), mem]).sharesEntriesWith(a)).toBe(false);
  });
});

describe('the statuses a task keeps', () => {
  const status = (n: number): V1TaskStatus => ({ task_id: { value: 't' }, state: 'TASK_RUNNING', message: String(n) });

  it('keeps the latest three, oldest first, in a new list each time', () => {
    let kept: V1TaskStatus[] = [];
    const seen: V1TaskStatus[][] = [];
    for (let n = 1; n <= 5; n++) {
      kept = withLatestStatus(kept, status(n));
      seen.push(kept);
    }
    expect(seen.map((l) => l.map((s) => s.message))).toEqual([['1'], ['1', '2'], ['1', '2', '3'], ['2', '3', '4'], ['3', '4', '5']]);
    // Earlier lists are never changed: views handed out keep what they showed.
    expect(seen[2]!.map((s) => s.message)).toEqual(['1', '2', '3']);
  });
});
