/**
 * Whether dockerd can find a volume driver, checked the way dockerd looks
 * (built-in `local`, managed plugins, then legacy plugins by socket or spec
 * file). Docker itself retries an unknown driver for about 15 s before
 * failing; checking first turns a typo into an immediate, clear refusal.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { invalid } from '../../../../contracts/errors.js';

const SOCKET_DIRS = ['/run/docker/plugins'];
const SPEC_DIRS = ['/etc/docker/plugins', '/usr/lib/docker/plugins'];

export function legacyPluginExists(name: string, socketDirs = SOCKET_DIRS, specDirs = SPEC_DIRS): boolean {
  for (const d of socketDirs) if (existsSync(join(d, `${name}.sock`)) || existsSync(join(d, name, `${name}.sock`))) return true;
  for (const d of specDirs) if (existsSync(join(d, `${name}.spec`)) || existsSync(join(d, `${name}.json`))) return true;
  return false;
}

export async function checkVolumeDriver(docker: Dockerode, name: string): Promise<void> {
  if (name === 'local' || legacyPluginExists(name)) return;
  const managed = await docker.listPlugins().catch(() => []);
  if (managed.some((p) => p.Enabled && (p.Name === name || p.Name === `${name}:latest`))) return;
  throw invalid(`unknown volume driver "${name}": dockerd has no such plugin on this host`);
}
