/**
 * Installing corral on a node for a container runtime: the `corral` plugin
 * binary (the C shim) into a CNI bin dir, and a conflist naming it, with
 * optional chained reference plugins after it (portmap, bandwidth). The lab
 * and a Vagrant provisioner run exactly this.
 */
import { copyFileSync, existsSync, mkdirSync, renameSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError } from '../../../contracts/errors.js';
import { NATIVE_BUILD_DIR } from '../../../common/sys/paths.js';

const SHIM_NAME = 'corral';

export function shimPath(): string {
  return join(NATIVE_BUILD_DIR(), SHIM_NAME);
}

interface ConflistOptions {
  network: string;
  cniVersion?: string;
  socket?: string;
  mtu?: number;
  pools?: string[];
  /** Reference plugins chained after corral, e.g. ["portmap", "bandwidth"]. */
  chain?: string[];
}

export function conflist(o: ConflistOptions): Record<string, unknown> {
  const plugins: Record<string, unknown>[] = [
    {
      type: SHIM_NAME,
      ...(o.socket ? { daemonSocket: o.socket } : {}),
      ...(o.mtu ? { mtu: o.mtu } : {}),
      ...(o.pools?.length ? { pools: o.pools } : {}),
    },
  ];
  for (const p of o.chain ?? []) {
    if (p === 'portmap') plugins.push({ type: 'portmap', capabilities: { portMappings: true }, snat: true });
    else if (p === 'bandwidth') plugins.push({ type: 'bandwidth', capabilities: { bandwidth: true } });
    else throw new CorralError('INVALID_ARGUMENT', `unknown chained plugin "${p}" (portmap or bandwidth)`);
  }
  return { cniVersion: o.cniVersion ?? '1.0.0', name: o.network, plugins };
}

/** Copies the shim into binDir (atomically) and writes confDir/10-NETWORK.conflist. */
export function installCni(o: ConflistOptions & { binDir: string; confDir: string }): { binary: string; conflist: string } {
  const src = shimPath();
  if (!existsSync(src)) throw new CorralError('FAILED_PRECONDITION', `${src} is missing: build it with \`make -C native/cni-shim\``);
  mkdirSync(o.binDir, { recursive: true });
  mkdirSync(o.confDir, { recursive: true });
  const binary = join(o.binDir, SHIM_NAME);
  // Copy then rename: a runtime exec'ing the plugin right now sees the old or the new file, never half of one.
  copyFileSync(src, `${binary}.tmp`);
  chmodSync(`${binary}.tmp`, 0o755);
  renameSync(`${binary}.tmp`, binary);
  const file = join(o.confDir, `10-${o.network}.conflist`);
  writeFileSync(file, JSON.stringify(conflist(o), null, 2) + '\n');
  return { binary, conflist: file };
}
