/**
 * Value arithmetic for the three Mesos resource types. Scalars are kept as
 * integers in thousandths (Mesos's fixed-point precision) so that sums and
 * differences are exact: 0.1 + 0.2 CPUs is 300 milli-CPUs, not 0.30000000000000004.
 */

const SCALE = 1000;

const names = new Map<string, number>();
const nameList: string[] = [];

/** Small dense id per resource name, so hot paths can index arrays instead of maps. */
export function nameId(name: string): number {
  let id = names.get(name);
  if (id === undefined) {
    id = nameList.length;
    names.set(name, id);
    nameList.push(name);
  }
  return id;
}

export const nameOf = (id: number): string => nameList[id]!;

export const toMilli = (v: number): number => Math.round(v * SCALE);
export const fromMilli = (m: number): number => m / SCALE;

/** Sorted, non-overlapping, non-adjacent inclusive intervals. */
export type Ranges = ReadonlyArray<readonly [number, number]>;

export function normalizeRanges(input: Iterable<readonly [number, number]>): [number, number][] {
  const sorted = [...input].filter(([b, e]) => e >= b).sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [b, e] of sorted) {
    const last = out[out.length - 1];
    if (last && b <= last[1] + 1) last[1] = Math.max(last[1], e);
    else out.push([b, e]);
  }
  return out;
}

export function rangesUnion(a: Ranges, b: Ranges): [number, number][] {
  if (a.length === 0) return b.map(([x, y]) => [x, y]);
  if (b.length === 0) return a.map(([x, y]) => [x, y]);
  return normalizeRanges([...a, ...b]);
}

/** a minus b, both normalized. */
export function rangesDifference(a: Ranges, b: Ranges): [number, number][] {
  const out: [number, number][] = [];
  let j = 0;
  for (const [ab, ae] of a) {
    let start = ab;
    while (j < b.length && b[j]![1] < start) j++;
    let k = j;
    while (k < b.length && b[k]![0] <= ae) {
      const [bb, be] = b[k]!;
      if (bb > start) out.push([start, bb - 1]);
      start = Math.max(start, be + 1);
      if (start > ae) break;
      k++;
    }
    if (start <= ae) out.push([start, ae]);
  }
  return out;
}

/** Whether every value of b lies in a (both normalized). */
export function rangesContain(a: Ranges, b: Ranges): boolean {
  let i = 0;
  for (const [bb, be] of b) {
    while (i < a.length && a[i]![1] < bb) i++;
    const r = a[i];
    if (!r || r[0] > bb || r[1] < be) return false;
  }
  return true;
}

export function rangesSize(a: Ranges): number {
  let n = 0;
  for (const [b, e] of a) n += e - b + 1;
  return n;
}

export function setUnion(a: readonly string[], b: readonly string[]): string[] {
  return [...new Set([...a, ...b])].sort();
}

export function setDifference(a: readonly string[], b: readonly string[]): string[] {
  const drop = new Set(b);
  return a.filter((x) => !drop.has(x));
}

export function setContains(a: readonly string[], b: readonly string[]): boolean {
  if (b.length > a.length) return false;
  const have = new Set(a);
  return b.every((x) => have.has(x));
}
