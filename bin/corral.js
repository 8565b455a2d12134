#!/usr/bin/env node
// Entry point installed as `corral`; the compiled CLI lives in dist/.
import('../dist/cli/corral.js').catch((err) => {
  process.stderr.write(`corral: cannot start (${err.message}); run "npm run build" first\n`);
  process.exit(1);
});
