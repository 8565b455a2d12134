import { describe, it, expect } from 'vitest';
import { parseEnv, parseNetConf, requireVersionFor, validAttachments, validIfname } from '../../../plugins/cni-calico-like/src/cni/request.js';
import { CniError, toCniError } from '../../../plugins/cni-calico-like/src/cni/spec.js';
import { buildResult } from '../../../plugins/cni-calico-like/src/cni/result.js';
import { percentDecode, envFromHeaders } from '../../../plugins/cni-calico-like/src/daemon/api.js';
import { CorralError } from '../../../contracts/errors.js';

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

  it('accepts a GC config exactly as libcni builds it: both attachment keys', () => {
    // libcni/api.go GCNetworkList injects name, cniVersion and the valid list under both keys.
    const list = [
      { containerID: 'c1', ifname: 'eth0' },
      { containerID: 'c2', ifname: 'net1' },
    ];
    const c = parseNetConf(conf({ 'cni.dev/valid-attachments': list, 'cni.dev/attachments': list }));
    expect(validAttachments(c)).toEqual([...list, ...list]);
  });

  it('takes the valid attachments from either key alone, and from both when they differ', () => {
    expect(validAttachments(parseNetConf(conf({ 'cni.dev/attachments': [{ containerID: 'old', ifname: 'eth0' }] })))).toEqual([{ containerID: 'old', ifname: 'eth0' }]);
    const both = parseNetConf(conf({ 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }], 'cni.dev/attachments': [{ containerID: 'b', ifname: 'eth0' }] }));
    expect(
      validAttachments(both)
        .map((a) => a.containerID)
        .sort(),
    ).toEqual(['a', 'b']);
    expect(validAttachments(parseNetConf(conf()))).toEqual([]);
  });

  it('reads a Go nil list (null) as no valid attachment', () => {
    const c = parseNetConf(conf({ 'cni.dev/valid-attachments': null, 'cni.dev/attachments': null }));
    expect(validAttachments(c)).toEqual([]);
  });

  it('still checks the attachment entries it uses', () => {
    expect(codeOf(() => parseNetConf(conf({ 'cni.dev/attachments': [{ containerID: 'a' }] })))).toBe(7);
    expect(codeOf(() => parseNetConf(conf({ 'cni.dev/valid-attachments': 'c1/eth0' })))).toBe(7);
  });

  it('accepts every key a runtime injects or copies into a plugin config', () => {
    const c = parseNetConf(
      conf({
        args: { cni: { ips: ['100.96.0.9'] } },
        runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
        capabilities: { portMappings: true },
        prevResult: { cniVersion: '1.1.0', interfaces: [] },
        dns: { nameservers: ['100.96.0.1'] },
        cniVersions: ['1.0.0', '1.1.0'],
        disableCheck: false,
        disableGC: false,
        loadOnlyInlinedPlugins: false,
        'cni.dev/some-future-key': { any: ['thing'] },
        'cni.dev/': 1,
      }),
    );
    expect(c.runtimeConfig).toHaveProperty('portMappings');
    expect(c).not.toHaveProperty(['cni.dev/some-future-key']);
  });

  it("keeps refusing typos in corral's own keys and keys outside the runtime namespace", () => {
    for (const typo of [{ pool: ['a'] }, { mtus: 1400 }, { daemonsocket: '/run/x.sock' }, { 'cni.dev': 1 }, { 'cni.devx/valid-attachments': [] }, { runtimeconfig: {} }]) {
      const e = (() => {
        try {
          parseNetConf(conf(typo));
        } catch (err) {
          return err as CniError;
        }
        throw new Error(`${JSON.stringify(typo)} was accepted`);
      })();
      expect(e.code).toBe(7);
      expect(e.message).toContain(Object.keys(typo)[0]);
    }
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
    expect(r.interfaces).toEqual([
      { name: 'crl0123456789ab', mac: 'aa:aa:aa:aa:aa:aa' },
      { name: 'eth0', mac: 'bb:bb:bb:bb:bb:bb', sandbox: '/run/netns/c' },
    ]);
    expect(r.ips).toEqual([{ address: '100.96.0.7/32', gateway: '169.254.1.1', interface: 1 }]);
    expect(r.routes).toEqual([{ dst: '0.0.0.0/0', gw: '169.254.1.1' }]);
  });

  it('speaks each version: 0.4.0 has ip versions, 1.1.0 has MTUs', () => {
    expect(buildResult('0.4.0', wired, '100.96.0.7', '/n').ips[0]).toMatchObject({ version: '4' });
    expect(buildResult('1.1.0', wired, '100.96.0.7', '/n').interfaces[1]).toMatchObject({ mtu: 1450 });
    expect(buildResult('1.0.0', wired, '100.96.0.7', '/n').interfaces[1]).not.toHaveProperty('mtu');
  });
});
