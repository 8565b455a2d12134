import { describe, expect, it } from 'vitest';
import { Resources } from '../../../core-scheduler/src/resources/resources.js';
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
