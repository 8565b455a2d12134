import { describe, expect, it } from 'vitest';
import { schedulerCallSchema, taskDefaultsSchema } from '../../contracts/v1/v1-schema.js';
import { agentCallSchema } from '../../contracts/v1/agent-schema.js';
import { isQuickAgentCall, isQuickSchedulerCall, isQuickTaskDefaults } from '../../contracts/v1/v1-fast.js';
import { stripNulls } from '../../contracts/v1/v1-json.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
/** What is checked: a scheduler call, an agent call, or an ACCEPT_BATCH's task_defaults. */
type Api = 'scheduler' | 'agent' | 'defaults';

const cpus = (v: number): Json => ({ name: 'cpus', type: 'SCALAR', scalar: { value: v } });
const task = (i: number, extra: Record<string, Json> = {}): Json => ({
  name: `t${i}`,
  task_id: { value: `t${i}` },
  agent_id: { value: 'agent-1' },
  resources: [cpus(1), { name: 'mem', type: 'SCALAR', scalar: { value: 256 } }],
  command: { value: 'sleep 3600' },
  ...extra,
});

/** Valid calls in the shapes corral's own clients send, and a few richer ones. */
const bases: Array<{ api: Api; body: Json }> = [
  {
    api: 'scheduler',
    body: {
      type: 'ACCEPT',
      framework_id: { value: 'fw-1' },
      accept: { offer_ids: [{ value: 'o-1' }], operations: [{ type: 'LAUNCH', launch: { task_infos: [task(1), task(2)] } }], filters: { refuse_seconds: 3600 } },
    },
  },
  {
    api: 'scheduler',
    body: {
      type: 'ACCEPT',
      framework_id: { value: 'fw-1' },
      accept: {
        offer_ids: [{ value: 'o-1' }, { value: 'o-2' }],
        operations: [
          {
            type: 'LAUNCH',
            launch: {
              task_infos: [
                task(3, {
                  resources: [
                    { name: 'cpus', type: 'SCALAR', scalar: { value: 0.5 }, allocation_info: { role: 'web' }, role: 'web' },
                    { name: 'ports', type: 'RANGES', ranges: { range: [{ begin: 31000, end: 31001 }] }, allocation_info: { role: 'web' } },
                  ],
                  command: { shell: false, value: '/bin/app', arguments: ['/bin/app', '--port', '31000'], user: 'nobody' },
                  data: 'aGVsbG8=',
                  x_framework_note: { anything: [1, 2] },
                }),
              ],
            },
          },
        ],
      },
    },
  },
  {
    api: 'scheduler',
    body: {
      type: 'ACCEPT_BATCH',
      framework_id: { value: 'fw-1' },
      accept_batch: {
        accepts: [
          { offer_ids: [{ value: 'o-1' }], operations: [{ type: 'LAUNCH', launch: { task_infos: [task(1), task(2)] } }], filters: { refuse_seconds: 3600 } },
          { offer_ids: [{ value: 'o-2' }], operations: [{ type: 'LAUNCH', launch: { task_infos: [task(3)] } }] },
        ],
      },
    },
  },
  {
    api: 'scheduler',
    body: {
      type: 'ACKNOWLEDGE_BATCH',
      framework_id: { value: 'fw-1' },
      acknowledge_batch: { acknowledgements: [1, 2, 3].map((i) => ({ agent_id: { value: 'agent-1' }, task_id: { value: `t${i}` }, uuid: 'AAAAAAAAAAAAAAAAAAAAAA==' })) },
    },
  },
  {
    api: 'scheduler',
    body: {
      type: 'ACKNOWLEDGE_BATCH',
      framework_id: { value: 'fw-1' },
      acknowledge_batch: {
        agents: [1, 2].map((a) => ({ agent_id: { value: `agent-${a}` }, acknowledgements: [1, 2].map((i) => ({ task_id: { value: `t${a}-${i}` }, uuid: 'AAAAAAAAAAAAAAAAAAAAAA==' })) })),
        acknowledgements: [{ agent_id: { value: 'agent-3' }, task_id: { value: 't3' }, uuid: 'AAAAAAAAAAAAAAAAAAAAAA==' }],
      },
    },
  },
  {
    api: 'agent',
    body: {
      type: 'UPDATE',
      agent_id: { value: 'agent-1' },
      update: {
        updates: [1, 2].map((i) => ({
          framework_id: { value: 'fw-1' },
          status: { task_id: { value: `t${i}` }, state: 'TASK_RUNNING', source: 'SOURCE_EXECUTOR', uuid: 'AAAAAAAAAAAAAAAAAAAAAA==', timestamp: 1700000000.25, agent_id: { value: 'agent-1' } },
        })),
      },
    },
  },
  {
    api: 'agent',
    body: {
      type: 'UPDATE',
      agent_id: { value: 'agent-1' },
      update: {
        frameworks: [
          {
            framework_id: { value: 'fw-1' },
            statuses: [1, 2].map((i) => ({ task_id: { value: `t${i}` }, state: 'TASK_RUNNING', source: 'SOURCE_EXECUTOR', uuid: 'AAAAAAAAAAAAAAAAAAAAAA==', timestamp: 1700000000.25 })),
          },
          { framework_id: { value: 'fw-2' }, statuses: [{ task_id: { value: 't3' }, state: 'TASK_FINISHED', message: 'done' }] },
        ],
      },
    },
  },
  {
    api: 'agent',
    body: {
      type: 'UPDATE',
      agent_id: { value: 'agent-1' },
      update: {
        updates: [
          {
            framework_id: { value: 'fw-1' },
            status: {
              task_id: { value: 't9' },
              state: 'TASK_FAILED',
              message: 'exited 1',
              reason: 'REASON_COMMAND_EXECUTOR_FAILED',
              healthy: false,
              executor_id: { value: 'e' },
              data: '',
              x_extra: 1,
            },
          },
        ],
      },
    },
  },
  { api: 'defaults', body: { resources: [cpus(1), { name: 'mem', type: 'SCALAR', scalar: { value: 256 } }], command: { value: 'sleep 3600' } } },
  { api: 'defaults', body: { command: { value: 'sleep 3600', shell: false, arguments: ['a'] } } },
];

const quick = (api: Api, body: Json): boolean => {
  const b = body as Record<string, unknown>;
  if (api === 'defaults') return isQuickTaskDefaults(body);
  return api === 'scheduler' ? isQuickSchedulerCall(String(b.type), b) : isQuickAgentCall(String(b.type), b);
};
const zod = (api: Api, body: Json) => (api === 'defaults' ? taskDefaultsSchema : api === 'scheduler' ? schedulerCallSchema : agentCallSchema).safeParse(body);

function seeded(seed: number): () => number {
  return () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

const VALUES: Json[] = [
  null,
  true,
  -1,
  0,
  1.5,
  2 ** 53,
  1e16,
  1e15,
  '',
  'x',
  'x'.repeat(300),
  '42',
  '-7',
  [],
  {},
  { value: 'v' },
  { value: '' },
  'TASK_RUNNING',
  'TASK_BOGUS',
  'SCALAR',
  'RANGES',
  'SET',
  'LAUNCH',
  'RESERVE',
  '.',
  '-bad',
  'web',
  'cpus',
  { begin: 5, end: 4 },
  { role: 'r' },
  { value: 1 },
];
const SPECIAL_STRINGS: Json[] = ['*', '..', 'a b', 'TASK_STAGING', 'SOURCE_MASTER', 'SOURCE_BOGUS', 'é'];
const LENGTHS = [0, 1, 63, 64, 65, 128, 129, 255, 256, 257, 1024, 1025, 4097, 65536, 65537];
const KEYS = [
  'zzz',
  'shared',
  'labels',
  'container',
  'environment',
  'uris',
  'set',
  'reservations',
  'reservation',
  'disk',
  'revocable',
  'id',
  'executor',
  'container_status',
  'filters',
  'operations',
  'role',
  'scalar',
  'ranges',
  'value',
  'updates',
  'frameworks',
  'statuses',
  'status',
];

/** Every object and array inside `v`, with `v` itself. */
function nodes(v: Json, out: Array<Json[] | Record<string, Json>> = []): Array<Json[] | Record<string, Json>> {
  if (Array.isArray(v)) {
    out.push(v);
    for (const x of v) nodes(x, out);
  } else if (v && typeof v === 'object') {
    out.push(v);
    for (const x of Object.values(v)) nodes(x, out);
  }
  return out;
}

function mutate(body: Json, random: () => number): Json {
  const copy = JSON.parse(JSON.stringify(body)) as Json;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  // A copy of a sample value each time: a shared one changed later in the body could come to hold itself.
  const anyValue = (): Json => structuredClone(pick(VALUES));
  for (let n = 1 + Math.floor(random() * 2); n > 0; n--) {
    const node = pick(nodes(copy));
    if (Array.isArray(node)) {
      const op = random();
      if (op < 0.3 && node.length) node[Math.floor(random() * node.length)] = anyValue();
      else if (op < 0.6 && node.length) node.push(JSON.parse(JSON.stringify(node[0])) as Json);
      else node.length = 0;
    } else {
      const keys = Object.keys(node);
      const op = random();
      if (op < 0.25 && keys.length) delete node[pick(keys)];
      else if (op < 0.5 && keys.length) node[pick(keys)] = anyValue();
      else if (op < 0.85 && keys.length) {
        // Push a leaf to or past a limit: string lengths around the schema's maxima, numbers out of range.
        const k = pick(keys);
        const v = node[k];
        if (typeof v === 'string') node[k] = 'x'.repeat(pick(LENGTHS));
        else if (typeof v === 'number') node[k] = pick([-v, v + 0.5, v * 1e12, v - 1, 0, -1]);
        else node[k] = anyValue();
      } else node[pick(KEYS)] = anyValue();
    }
  }
  return JSON.parse(JSON.stringify(copy)) as Json;
}

describe('quick acceptance of the hot calls', () => {
  it('vouches for the shapes corral sends, and zod returns them unchanged', () => {
    for (const { api, body } of bases) {
      expect(quick(api, body)).toBe(true);
      const z = zod(api, body);
      expect(z.success).toBe(true);
      expect(z.data).toEqual(body);
    }
  });

  /**
   * Check one candidate body as the master reads it: nulls stripped (they are
   * unset fields), then the quick check; vouched for means zod, given its own
   * copy with the nulls in, accepts it and returns the body the quick path keeps.
   */
  function agree(api: Api, m: Json, tally: { vouched: number; rejected: number }): void {
    const z = zod(api, JSON.parse(JSON.stringify(m)) as Json);
    if (!z.success) tally.rejected++;
    const body = stripNulls(JSON.parse(JSON.stringify(m)) as Json);
    if (body === null || !quick(api, body)) return;
    tally.vouched++;
    if (!z.success) throw new Error(`vouched for a body zod rejects: ${JSON.stringify(m).slice(0, 2000)}\n${z.error.message}`);
    expect(z.data).toEqual(body);
  }

  it('agrees with zod on every single change: each field dropped, each value pushed past its limits, each unknown field added', () => {
    const tally = { vouched: 0, rejected: 0 };
    for (const { api, body } of bases) {
      const count = nodes(body).length;
      for (let n = 0; n < count; n++) {
        const keysOf = Object.keys(nodes(body)[n]!);
        for (const k of Array.isArray(nodes(body)[n]) ? [] : keysOf) {
          const original = (nodes(body)[n] as Record<string, Json>)[k]!;
          const candidates: Json[] = [...VALUES, ...LENGTHS.map((l) => 'x'.repeat(l)), ...SPECIAL_STRINGS];
          if (typeof original === 'number') candidates.push(original - 1, original + 1, original + 2, -original, original + 0.5, original * 1e12, 365 * 24 * 3600 + 1, 1e9);
          for (const v of [undefined, ...candidates]) {
            const copy = JSON.parse(JSON.stringify(body)) as Json;
            const node = nodes(copy)[n] as Record<string, Json>;
            if (v === undefined) delete node[k];
            else node[k] = v;
            agree(api, copy, tally);
          }
        }
        for (const k of KEYS) {
          for (const v of VALUES) {
            const copy = JSON.parse(JSON.stringify(body)) as Json;
            const node = nodes(copy)[n]!;
            if (Array.isArray(node)) node.push(v);
            else if (!(k in node)) node[k] = v;
            agree(api, copy, tally);
          }
        }
      }
    }
    expect(tally.vouched).toBeGreaterThan(500);
    expect(tally.rejected).toBeGreaterThan(5000);
  });

  it('never vouches for a body zod rejects or would change (10,000 calls with random changes)', () => {
    const random = seeded(42);
    const tally = { vouched: 0, rejected: 0 };
    for (let i = 0; i < 10_000; i++) {
      const { api, body } = bases[i % bases.length]!;
      agree(api, mutate(body, random), tally);
    }
    // The fuzz reaches both sides: bodies still plainly valid, and bodies zod refuses.
    expect(tally.vouched).toBeGreaterThan(500);
    expect(tally.rejected).toBeGreaterThan(2000);
  });

  it('agrees with zod with any field or element set to null (an unset field to both)', () => {
    const tally = { vouched: 0, rejected: 0 };
    for (const { api, body } of bases) {
      const count = nodes(body).length;
      for (let n = 0; n < count; n++) {
        const node = nodes(body)[n]!;
        const slots: Array<string | number> = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
        for (const k of [...slots, 'x_unknown']) {
          const copy = JSON.parse(JSON.stringify(body)) as Json;
          (nodes(copy)[n] as Record<string | number, Json>)[k] = null;
          agree(api, copy, tally);
        }
      }
    }
    // Optional fields set to null still pass the quick check; required ones are refused by both.
    expect(tally.vouched).toBeGreaterThan(50);
    expect(tally.rejected).toBeGreaterThan(50);
  });

  it('leaves a "__proto__" key, string-encoded numbers and a missing operations list to zod', () => {
    const proto = JSON.parse(
      '{"type":"ACKNOWLEDGE_BATCH","framework_id":{"value":"f","__proto__":{"x":1}},"acknowledge_batch":{"acknowledgements":[{"agent_id":{"value":"a"},"task_id":{"value":"t"},"uuid":"u"}]}}',
    ) as Json;
    expect(quick('scheduler', proto)).toBe(false);
    const ranges = JSON.parse(JSON.stringify(bases[1]!.body)) as {
      accept: { operations: Array<{ launch: { task_infos: Array<{ resources: Array<{ ranges?: { range: Array<{ begin: Json }> } }> }> } }> };
    };
    ranges.accept.operations[0]!.launch.task_infos[0]!.resources[1]!.ranges!.range[0]!.begin = '31000';
    expect(quick('scheduler', ranges as unknown as Json)).toBe(false);
    expect(zod('scheduler', ranges as unknown as Json).success).toBe(true);
    const noOps = { type: 'ACCEPT', framework_id: { value: 'f' }, accept: { offer_ids: [{ value: 'o' }] } };
    expect(quick('scheduler', noOps)).toBe(false);
    expect(zod('scheduler', noOps).data).toEqual({ ...noOps, accept: { ...noOps.accept, operations: [] } });
  });
});
