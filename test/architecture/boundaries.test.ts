/**
 * The layer rules (.dependency-cruiser.cjs) hold for the tree, and they do
 * catch what they forbid: each kind of violation is planted in a scratch
 * tree shaped like corral's, and the checker must name it.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const depcruise = join(root, 'node_modules', '.bin', 'depcruise');
const LAYERS = ['contracts', 'common', 'native/lib', 'core-scheduler', 'discovery', 'plugins', 'provision', 'lab', 'cli'];

interface Violation {
  rule: { name: string };
  from: string;
  to: string;
}

function cruise(cwd: string, dirs: string[]): Promise<Violation[]> {
  return new Promise((resolve, reject) => {
    execFile(depcruise, [...dirs, '--config', join(root, '.dependency-cruiser.cjs'), '--output-type', 'json'], { cwd, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      // depcruise exits non-zero when it finds violations; its JSON is still complete.
      try {
        resolve((JSON.parse(stdout) as { summary: { violations: Violation[] } }).summary.violations);
      } catch {
        reject(new Error(`depcruise failed: ${err?.message ?? ''} ${stderr}`));
      }
    });
  });
}

describe('architecture boundaries', () => {
  it('the tree has no import that climbs a layer, bypasses an entry or cycles between folders', async () => {
    const violations = await cruise(root, LAYERS);
    expect(violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`)).toEqual([]);
  }, 180_000);

  const scratch = mkdtempSync(join(tmpdir(), 'corral-boundaries-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  const plant = (files: Record<string, string>): void => {
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(scratch, path)), { recursive: true });
      writeFileSync(join(scratch, path), text);
    }
  };

  it('fails on each planted violation, naming the rule', async () => {
    copyFileSync(join(root, 'tsconfig.json'), join(scratch, 'tsconfig.json'));
    plant({
      // well-formed parts: entries that the planted files point at
      'core-scheduler/src/index.ts': "export { master } from './master/master.js';\n",
      'core-scheduler/src/master/master.ts': 'export const master = 1;\n',
      'core-scheduler/src/agent/agent.ts': "import { cycleB } from '../master/cycle-b.js';\nexport const cycleA = cycleB;\n",
      'core-scheduler/src/master/cycle-b.ts': "import { cycleA } from '../agent/agent.js';\nexport const cycleB = () => cycleA;\n",
      'plugins/isolator/src/index.ts': 'export const isolator = 1;\n',
      'plugins/volume-driver/src/index.ts': 'export const volumes = 1;\n',
      'plugins/volume-driver/src/inside.ts': 'export const inside = 1;\n',
      'cli/corral.ts': 'export const cli = 1;\n',
      // the violations
      'contracts/bad.ts': "import { master } from '../core-scheduler/src/index.js';\nexport const bad = master;\n",
      'common/bad.ts': "import { isolator } from '../plugins/isolator/src/index.js';\nexport const bad = isolator;\n",
      'plugins/isolator/src/bad.ts': "import { volumes } from '../../volume-driver/src/index.js';\nexport const bad = volumes;\n",
      'provision/src/bad.ts': "import { inside } from '../../plugins/volume-driver/src/inside.js';\nexport const bad = inside;\n",
      'lab/bad.ts': "import { cli } from '../cli/corral.js';\nexport const bad = cli;\n",
    });
    const found = (
      await cruise(
        scratch,
        LAYERS.filter((l) => l !== 'native/lib' && l !== 'discovery'),
      )
    ).map((v) => `${v.rule.name} ${v.from}`);
    expect(found).toEqual(
      expect.arrayContaining([
        'contracts-depend-on-nothing contracts/bad.ts',
        'kit-imports-contracts-only common/bad.ts',
        'component-isolator-imports-contracts-and-kit plugins/isolator/src/bad.ts',
        'enter-volume-driver-through-its-index provision/src/bad.ts',
        'lab-below-cli lab/bad.ts',
        'no-cycles-between-folders core-scheduler/src/agent/agent.ts',
      ]),
    );
  }, 180_000);
});
