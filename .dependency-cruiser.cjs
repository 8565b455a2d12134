/**
 * corral's layers, bottom up, checked on every CI run (`npm run check:deps`):
 *
 *   contracts/                 wire types, codecs, clients, plugin contracts — nothing of corral
 *   common/, native/lib/       the kit (host kit, Store backends, HTTP, logging) — contracts only
 *   core-scheduler/, plugins/*, discovery/
 *                              components — contracts and kit, never each other
 *   provision/, lab/           node lifecycle and the namespace lab — components through their entries
 *   cli/                       the composition root — anything, through entries
 *
 * A component's public entry is its index.ts; code outside it imports that
 * file only. Tests and benchmarks may reach inside (they test the insides).
 */
const COMPONENTS = ['core-scheduler', 'discovery', 'plugins/cni-calico-like', 'plugins/isolator', 'plugins/volume-driver', 'provision', 'lab'];
const ENTRY = {
  'core-scheduler': 'core-scheduler/src/index\\.ts$',
  discovery: 'discovery/src/index\\.ts$',
  'plugins/cni-calico-like': 'plugins/cni-calico-like/src/index\\.ts$',
  'plugins/isolator': 'plugins/isolator/src/index\\.ts$',
  'plugins/volume-driver': 'plugins/volume-driver/src/index\\.ts$',
  provision: 'provision/src/index\\.ts$',
  lab: 'lab/index\\.ts$',
};
const esc = (s) => s.replace(/[/.-]/g, (c) => '\\' + c);
const PRODUCTION = '^(contracts|common|native/lib|core-scheduler|discovery|plugins|provision|lab|cli)/';

module.exports = {
  forbidden: [
    {
      name: 'contracts-depend-on-nothing',
      comment: 'contracts/ is the bottom layer: it may import only itself and npm packages.',
      severity: 'error',
      from: { path: '^contracts/' },
      to: { path: '^(common|native|core-scheduler|discovery|plugins|provision|lab|cli)/' },
    },
    {
      name: 'kit-imports-contracts-only',
      comment: 'The kit (common/, native/lib/) may import contracts/ and itself, nothing above.',
      severity: 'error',
      from: { path: '^(common|native/lib)/' },
      to: { path: '^(core-scheduler|discovery|plugins|provision|lab|cli)/' },
    },
    ...['core-scheduler', 'discovery', 'plugins/cni-calico-like', 'plugins/isolator', 'plugins/volume-driver'].map((c) => ({
      name: `component-${c.replace('plugins/', '')}-imports-contracts-and-kit`,
      comment: `${c} is a component: it may import contracts/, the kit and itself; other components are composed in cli/.`,
      severity: 'error',
      from: { path: `^${esc(c)}/` },
      to: { path: '^(core-scheduler|discovery|plugins|provision|lab|cli)/', pathNot: `^${esc(c)}/` },
    })),
    {
      name: 'provision-below-lab-and-cli',
      comment: 'provision/ may import components (through their entries), the kit and contracts; not the lab or the CLI.',
      severity: 'error',
      from: { path: '^provision/' },
      to: { path: '^(lab|cli)/' },
    },
    {
      name: 'lab-below-cli',
      comment: 'lab/ may import provision/, components, the kit and contracts; not the CLI.',
      severity: 'error',
      from: { path: '^lab/' },
      to: { path: '^cli/' },
    },
    ...COMPONENTS.map((c) => ({
      name: `enter-${c.replace('plugins/', '')}-through-its-index`,
      comment: `Code outside ${c} imports its public entry (${ENTRY[c].replace(/\\/g, '').replace('$', '')}) only.`,
      severity: 'error',
      from: { path: PRODUCTION, pathNot: `^${esc(c)}/` },
      to: { path: `^${esc(c)}/`, pathNot: ENTRY[c] },
    })),
    {
      name: 'no-cycles-between-folders',
      comment: "No import cycle that leaves a folder: folders form a directed graph (cycles among the modules of one folder are that folder's business).",
      severity: 'error',
      from: { path: '^(.+)/[^/]+$', pathNot: '^(test|bench|node_modules)/' },
      to: { circular: true, viaSomeNot: '^$1/[^/]+$' },
    },
    {
      name: 'production-never-imports-tests',
      severity: 'error',
      from: { path: PRODUCTION },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      from: { path: PRODUCTION },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|dist|build)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js', '.json', '.node'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
