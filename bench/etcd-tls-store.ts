/**
 * What TLS and authentication cost the etcd Store by themselves: a put loop
 * (64 puts in flight, 200-byte values over 1,000 keys) through EtcdStore on a
 * fresh single-member etcd, plain, over TLS with a client certificate, and
 * over TLS with authentication on (the user from the certificate's CN, or
 * from a password token). Rounds alternate the four; medians are printed.
 *
 * Usage: npx tsx bench/etcd-tls-store.ts [--rounds 3] [--puts 20000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { corralMasterUser, setupEtcdAuth } from '../common/store/etcd-auth.js';
import { EtcdStore, type EtcdStoreOptions } from '../common/store/etcd.js';
import { startEtcd } from '../test/harness/etcd.js';
import { makeEtcdPki } from '../test/harness/etcd-pki.js';
import { flag } from './volume-common.js';

const ROUNDS = flag('--rounds', 3, { whole: true, min: 1 });
const PUTS = flag('--puts', 20_000, { whole: true, min: 1 });
const IN_FLIGHT = 64;

async function putRate(opts: EtcdStoreOptions): Promise<number> {
  const store = await EtcdStore.open(opts);
  try {
    const value = 'x'.repeat(200);
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < PUTS) {
          const k = next++;
          await store.put(`k/${k % 1000}`, value);
        }
      }),
    );
    return PUTS / ((performance.now() - t0) / 1000);
  } finally {
    await store.close();
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'corral-bench-etcd-tls-'));
  const pki = await makeEtcdPki(join(dir, 'pki'));
  const cert = await pki.client('corral-master');
  const setup = await pki.client('bench-setup');
  const results: Record<string, number[]> = { plain: [], tls: [], 'tls+auth (certificate CN)': [], 'tls+auth (password)': [] };
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const plain = await startEtcd();
      try {
        results.plain!.push(await putRate({ endpoints: [plain.endpoint], namespace: 'corral/' }));
      } finally {
        await plain.stop();
      }
      const secure = await startEtcd({ tls: pki.server });
      try {
        const tls = { ca: pki.caFile, ...cert };
        results.tls!.push(await putRate({ endpoints: [secure.endpoint], namespace: 'corral/', tls }));
        await setupEtcdAuth({ endpoints: [secure.endpoint], tls: { ca: pki.caFile, ...setup } }, { rootPassword: 'bench-root', users: [corralMasterUser('corral/', 'bench-pw')] });
        results['tls+auth (certificate CN)']!.push(await putRate({ endpoints: [secure.endpoint], namespace: 'corral/', tls }));
        results['tls+auth (password)']!.push(await putRate({ endpoints: [secure.endpoint], namespace: 'corral/', tls, auth: { username: 'corral-master', password: 'bench-pw' } }));
      } finally {
        await secure.stop();
      }
      console.error(
        `round ${round}: ${Object.entries(results)
          .map(([k, v]) => `${k} ${v.at(-1)!.toFixed(0)}`)
          .join(', ')} puts/s`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const base = median(results.plain!);
  console.log(`EtcdStore puts/s, ${PUTS} puts, ${IN_FLIGHT} in flight, ${ROUNDS} rounds`);
  for (const [k, v] of Object.entries(results)) {
    console.log(
      `${k.padEnd(28)} runs ${v
        .map((x) => x.toFixed(0))
        .join(' / ')
        .padEnd(24)} median ${median(v).toFixed(0).padStart(6)}  (${(median(v) / base).toFixed(2)}× plain)`,
    );
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
