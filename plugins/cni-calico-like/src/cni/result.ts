/**
 * The ADD result in the shape of the config's CNI version. Both interfaces
 * are listed — the host end without `sandbox` — because chained plugins
 * (bandwidth) look the host veth up in prevResult.interfaces.
 */
import { GATEWAY, type Wired } from '../dataplane/wiring.js';
import { versionAtLeast } from './spec.js';

export interface CniResult {
  cniVersion: string;
  interfaces: Array<{ name: string; mac: string; sandbox?: string; mtu?: number }>;
  ips: Array<{ version?: '4'; address: string; gateway: string; interface: number }>;
  routes: Array<{ dst: string; gw?: string }>;
  dns: Record<string, unknown>;
}

export function buildResult(cniVersion: string, wired: Wired, ip: string, netns: string): CniResult {
  const withMtu = versionAtLeast(cniVersion, '1.1.0');
  return {
    cniVersion,
    interfaces: [
      { name: wired.hostIfname, mac: wired.hostMac, ...(withMtu ? { mtu: wired.mtu } : {}) },
      { name: wired.containerIfname, mac: wired.containerMac, sandbox: netns, ...(withMtu ? { mtu: wired.mtu } : {}) },
    ],
    ips: [{ ...(versionAtLeast(cniVersion, '1.0.0') ? {} : { version: '4' as const }), address: `${ip}/32`, gateway: GATEWAY, interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: GATEWAY }],
    dns: {},
  };
}

/** The container address a prevResult names (for CHECK), if any. */
export function prevResultIps(prev: Record<string, unknown> | undefined): string[] {
  const ips = prev?.ips;
  if (!Array.isArray(ips)) return [];
  return ips.map((x) => (typeof x === 'object' && x !== null ? String((x as { address?: unknown }).address ?? '') : '')).filter(Boolean);
}
