import { describe, it, expect } from 'vitest';
import { parseEnv, parseNetConf, requireVersionFor, validIfname } from '../../../plugins/cni-calico-like/src/cni/request.js';
import { CniError, toCniError } from '../../../plugins/cni-calico-like/src/cni/spec.js';
import { buildResult } from '../../../plugins/cni-calico-like/src/cni/result.js';
import { percentDecode, envFromHeaders } from '../../../plugins/cni-calico-like/src/daemon/api.js';
import { CorralError } from '../../../common/errors.js';

const codeOf = (fn: () => unknown): number => {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return err.code;
    throw err;
  }
  throw new Error('expected a CniError');
};

const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc123', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0' };
const conf = (o: Record<string, unknown> = {}): Buffer => Buffer.from(JSON.stringify({ cniVersion: '1.1.0', name: 'net', type: 'corral', ...o }));

describe('CNI environment', () => {
  it('accepts a complete ADD environment and parses CNI_ARGS', () => {
    const e = parseEnv({ ...env, CNI_ARGS: 'K8S_POD_NAME=web;IgnoreUnknown=1' });
    expect(e).toMatchObject({ command: 'ADD', containerId: 'abc123', ifname: 'eth0', netns: '/run/netns/x' });
    expect(e.args).toEqual({ K8S_POD_NAME: 'web', IgnoreUnknown: '1' });
  });

  it('answers code 4 for missing or malformed variables', () => {
    expect(codeOf(() => parseEnv({}))).toBe(4);
    expect(codeOf(() => parseEnv({ ...env, CNI_COMMAND: 'BOGUS' }))).toBe(4);
    expect(codeOf(() => parseEnv({ ...env, CNI_CONTAINERID: undefined }))).toBe(4);
    expect(codeOf(() => parseEnv({ ...env, CNI_CONTAINERID: '-starts-with-dash' }))).toBe(4);
    expect(codeOf(() => parseEnv({ ...env, CNI_NETNS: undefined }))).toBe(4);
    expect(codeOf(() => parseEnv({ ...env, CNI_NETNS: 'relative/path' }))).toBe(4);
    expect(codeOf(() => parseEnv({ ...env, CNI_IFNAME: 'much-too-long-name0' }))).toBe(4);
    expect(codeOf(() => parseEnv({ ...env, CNI_ARGS: 'novalue' }))).toBe(4);
  });

  it('lets DEL go without a namespace (it may be gone)', () => {
    expect(parseEnv({ ...env, CNI_COMMAND: 'DEL', CNI_NETNS: undefined }).netns).toBeUndefined();
  });

  it('knows valid interface names', () => {
    expect(validIfname('eth0')).toBe(true);
    for (const bad of ['', '.', '..', 'a/b', 'a:b', 'a b', 'x'.repeat(16)]) expect(validIfname(bad)).toBe(false);
  });

  it('decodes the shim percent-encoding, including UTF-8 and control bytes', () => {
    expect(percentDecode('a%20b%25c')).toBe('a b%c');
    expect(percentDecode('%C3%A9t%C3%A9')).toBe('été');
    expect(codeOf(() => percentDecode('bad%zz'))).toBe(4);
    expect(envFromHeaders({ 'x-cni-command': 'ADD', 'x-cni-netns': '/run/netns/with%20space' })).toEqual({ CNI_COMMAND: 'ADD', CNI_NETNS: '/run/netns/with space' });
  });
});

describe('CNI network configuration', () => {
  it('accepts the corral fields and standard runtime keys', () => {
    const c = parseNetConf(conf({ pools: ['a', 'b'], mtu: 1400, daemonSocket: '/run/x.sock', runtimeConfig: {}, prevResult: {} }));
    expect(c.pools).toEqual(['a', 'b']);
    expect(c.mtu).toBe(1400);
  });

  it('answers 6 for undecodable JSON, 1 for an unknown version, 7 for the rest', () => {
    expect(codeOf(() => parseNetConf(Buffer.from('{not json')))).toBe(6);
    expect(codeOf(() => parseNetConf(Buffer.from('[1,2]')))).toBe(6);
    expect(codeOf(() => parseNetConf(conf({ cniVersion: '0.3.1' })))).toBe(1);
    expect(codeOf(() => parseNetConf(conf({ cniVersion: undefined })))).toBe(7);
    expect(codeOf(() => parseNetConf(conf({ type: 'bridge' })))).toBe(7);
    expect(codeOf(() => parseNetConf(conf({ mtu: 50 })))).toBe(7);
    expect(codeOf(() => parseNetConf(conf({ pool: ['typo'] })))).toBe(7);
    expect(codeOf(() => parseNetConf(conf({ name: 'has space' })))).toBe(7);
  });

  it('needs 1.1.0 for GC and STATUS', () => {
    const old = parseNetConf(conf({ cniVersion: '1.0.0' }));
    expect(codeOf(() => requireVersionFor('GC', old))).toBe(1);
    expect(codeOf(() => requireVersionFor('STATUS', old))).toBe(1);
    expect(() => requireVersionFor('ADD', old)).not.toThrow();
  });

  it('maps typed errors to CNI codes', () => {
    expect(toCniError(new CorralError('RESOURCE_EXHAUSTED', 'full')).code).toBe(100);
    expect(toCniError(new CorralError('UNAVAILABLE', 'etcd down')).code).toBe(11);
    expect(toCniError(new CorralError('INVALID_ARGUMENT', 'unknown pool "x"', { reason: 'unknown-pool' })).msg).toBe('unknown IP pool');
    expect(toCniError(new Error('boom')).code).toBe(999);
  });
});

describe('CNI result', () => {
  const wired = { hostIfname: 'crl0123456789ab', hostMac: 'aa:aa:aa:aa:aa:aa', containerIfname: 'eth0', containerMac: 'bb:bb:bb:bb:bb:bb', mtu: 1450 };

  it('lists the host veth without sandbox and the container interface with it', () => {
    const r = buildResult('1.0.0', wired, '100.96.0.7', '/run/netns/c');
    expect(r.interfaces).toEqual([{ name: 'crl0123456789ab', mac: 'aa:aa:aa:aa:aa:aa' }, { name: 'eth0', mac: 'bb:bb:bb:bb:bb:bb', sandbox: '/run/netns/c' }]);
    expect(r.ips).toEqual([{ address: '100.96.0.7/32', gateway: '169.254.1.1', interface: 1 }]);
    expect(r.routes).toEqual([{ dst: '0.0.0.0/0', gw: '169.254.1.1' }]);
  });

  it('speaks each version: 0.4.0 has ip versions, 1.1.0 has MTUs', () => {
    expect(buildResult('0.4.0', wired, '100.96.0.7', '/n').ips[0]).toMatchObject({ version: '4' });
    expect(buildResult('1.1.0', wired, '100.96.0.7', '/n').interfaces[1]).toMatchObject({ mtu: 1450 });
    expect(buildResult('1.0.0', wired, '100.96.0.7', '/n').interfaces[1]).not.toHaveProperty('mtu');
  });
});
