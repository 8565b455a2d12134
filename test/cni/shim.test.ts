/**
 * The built CNI shim (native/cni-shim, `make -C native/cni-shim`) on its own:
 * which error code a runtime sees for which fault. Whatever the shim can
 * judge itself (the environment, JSON syntax, cniVersion, name, type,
 * daemonSocket) it answers before connecting anywhere; code 11 ("try again
 * later", which runtimes retry) is kept for a well-formed call whose daemon
 * cannot be reached.
 * A stand-in daemon socket counts connections to prove "before connecting".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:net';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testDir } from '../harness/resources.js';
import { execPlugin, type CniCall } from '../../common/cni-runtime/exec.js';
import { SHIM } from './helpers.js';

let dir: string;
let socket: string;
let server: Server;
let connections = 0;

beforeAll(async () => {
  if (!existsSync(SHIM)) throw new Error(`${SHIM} is missing: build it with \`make -C native/cni-shim\``);
  dir = testDir('cni-shim');
  socket = join(dir, 'stand-in.sock');
  // Answers every request like a daemon that accepted it (204, as for DEL).
  server = createServer((c) => {
    connections++;
    c.on('data', () => undefined);
    c.end('HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const add: CniCall = { command: 'ADD', containerId: 'ctr-1', netns: '/run/netns/ct-none', ifname: 'eth0' };
const del: CniCall = { command: 'DEL', containerId: 'ctr-1', ifname: 'eth0' };
const gc: CniCall = { command: 'GC' };
const conf = (o: Record<string, unknown> = {}): Record<string, unknown> => ({ cniVersion: '1.1.0', name: 'net', type: 'corral', daemonSocket: socket, ...o });

/** Runs the shim and returns the spec error it printed (exit status 1). */
async function errorOf(call: CniCall, config: unknown): Promise<{ code: number; msg: string; details?: string; cniVersion: string }> {
  const r = await execPlugin(SHIM, call, config);
  expect(r.code, r.stdout + r.stderr).toBe(1);
  expect(r.json, r.stdout).toBeTypeOf('object');
  return r.json as { code: number; msg: string; details?: string; cniVersion: string };
}

describe('the shim answers what it can judge itself, before any connection', () => {
  it('garbage on stdin with the default daemon socket absent is a decoding error (6), not 11', async () => {
    // The default socket path from the environment, pointing nowhere: the shim cannot know any other.
    const e = await errorOf({ ...add, env: { CORRAL_CNI_SOCKET: join(dir, 'absent.sock') } }, 'garbage');
    expect(e).toMatchObject({ code: 6, msg: 'failed to decode the network configuration' });
  });

  const cases: Array<[string, CniCall, unknown, number]> = [
    ['not JSON', add, 'garbage', 6],
    ['empty stdin', del, '', 6],
    ['truncated JSON', add, `{"cniVersion":"1.1.0","daemonSocket":"${'/x'}"`, 6],
    ['a trailing comma', del, '{"cniVersion":"1.1.0","name":"n",}', 6],
    ['a byte-order mark', del, '\ufeff{"cniVersion":"1.1.0"}', 6],
    ['a raw control character in a string', del, '{"cniVersion":"1.1.0","name":"a\tb"}', 6],
    ['a number with a leading zero', del, '{"cniVersion":"1.1.0","mtu":01500}', 6],
    ['two values', del, '{"cniVersion":"1.1.0"} {}', 6],
    ['an array, not an object', del, '[{"cniVersion":"1.1.0"}]', 6],
    ['no cniVersion', del, { name: 'n', type: 'corral' }, 7],
    ['a cniVersion that is not a string', del, { cniVersion: 1.1, name: 'n', type: 'corral' }, 7],
    ['a cniVersion corral does not speak', del, conf({ cniVersion: '0.3.1' }), 1],
    ['a prefix of a version', del, conf({ cniVersion: '1.0' }), 1],
    ['GC under a 1.0.0 config', gc, conf({ cniVersion: '1.0.0' }), 1],
    ['no name', del, { cniVersion: '1.1.0', type: 'corral', daemonSocket: '/x.sock' }, 7],
    ['a name with a space', del, conf({ name: 'my net' }), 7],
    ['no type', del, { cniVersion: '1.1.0', name: 'n', daemonSocket: '/x.sock' }, 7],
    ["another plugin's type", del, conf({ type: 'bridge' }), 7],
    ['daemonSocket not a string', del, conf({ daemonSocket: 5 }), 7],
    ['daemonSocket relative', del, conf({ daemonSocket: 'cni.sock' }), 7],
    ['daemonSocket too long for a unix socket', del, conf({ daemonSocket: `/${'s'.repeat(120)}` }), 7],
    ['no CNI_COMMAND', { ...add, env: { CNI_COMMAND: undefined } }, conf(), 4],
    ['an unknown CNI_COMMAND', { ...add, command: 'ADDX' }, conf(), 4],
    ['ADD without CNI_CONTAINERID', { ...add, containerId: undefined }, conf(), 4],
    ['ADD with an empty CNI_CONTAINERID', { ...add, containerId: '' }, conf(), 4],
    ['a CNI_CONTAINERID with a slash', { ...add, containerId: 'a/b' }, conf(), 4],
    ['ADD without CNI_NETNS', { ...add, netns: undefined }, conf(), 4],
    ['a relative CNI_NETNS', { ...add, netns: 'run/netns/x' }, conf(), 4],
    ['CHECK without CNI_IFNAME', { ...add, command: 'CHECK', ifname: undefined }, conf(), 4],
    ['an interface name of 16 bytes', { ...del, ifname: 'x'.repeat(16) }, conf(), 4],
    ['an interface name with a colon', { ...del, ifname: 'eth0:1' }, conf(), 4],
    ['a CNI_ARGS entry without "="', { ...del, args: 'A=1;broken' }, conf(), 4],
    ['a bad CORRAL_CNI_TIMEOUT', { ...del, env: { CORRAL_CNI_TIMEOUT: 'soon' } }, conf(), 4],
    ['the environment before the config', { ...add, containerId: undefined }, 'garbage', 4],
  ];

  it.each(cases)('%s', async (_what, call, config, code) => {
    const before = connections;
    const e = await errorOf(call, config);
    expect(e.code, e.details).toBe(code);
    expect(e.details, 'every refusal says why').toBeTruthy();
    expect(connections, 'no connection to the daemon').toBe(before);
  });

  it("answers errors in the config's version when it speaks it", async () => {
    const e = await errorOf({ ...add, containerId: undefined }, conf({ cniVersion: '0.4.0' }));
    expect(e).toMatchObject({ code: 4, cniVersion: '0.4.0' });
  });
});

describe('what reaches the daemon', () => {
  it('forwards well-formed calls, whatever keys the daemon will judge', async () => {
    const before = connections;
    const calls: Array<[CniCall, unknown]> = [
      [del, conf()],
      // DEL may come without CNI_NETNS; GC and STATUS with the other variables empty, as libcni sets them.
      [{ ...gc, containerId: '', netns: '', ifname: '', args: '' }, conf({ 'cni.dev/valid-attachments': [], 'cni.dev/attachments': [] })],
      [{ command: 'STATUS' }, conf()],
      // Escaped socket path, deep nesting, surrogate pairs: valid JSON all.
      [del, `{"cniVersion":"1.1.0","name":"n","type":"corral","daemonSocket":"${socket.replaceAll('/', '\\/')}","x":${'['.repeat(5000)}${']'.repeat(5000)},"s":"\\ud83d\\ude00"}`],
      [{ ...del, args: 'IgnoreUnknown=1;K8S_POD_NAME=web;;' }, conf()],
    ];
    for (const [call, config] of calls) {
      const r = await execPlugin(SHIM, call, config);
      expect(r.code, `${call.command}: ${r.stdout}${r.stderr}`).toBe(0);
    }
    expect(connections).toBe(before + calls.length);
  });

  it('the last of duplicate keys wins, as with JSON.parse on the daemon side', async () => {
    const before = connections;
    const r = await execPlugin(SHIM, del, `{"cniVersion":"1.1.0","name":"n","type":"corral","daemonSocket":"/nowhere.sock","daemonSocket":"${socket}"}`);
    expect(r.code, r.stdout).toBe(0);
    expect(connections).toBe(before + 1);
  });
});

describe('11 only when the daemon is genuinely unreachable', () => {
  it('a valid call to an absent socket is "try again later"', async () => {
    const e = await errorOf(add, conf({ daemonSocket: join(dir, 'absent.sock') }));
    expect(e).toMatchObject({ code: 11, msg: 'try again later' });
    expect(e.details).toContain('absent.sock');
  });

  it('a valid call to a socket nobody listens on is "try again later"', async () => {
    const stale = join(dir, 'stale.sock');
    writeFileSync(stale, '');
    const e = await errorOf(del, conf({ daemonSocket: stale }));
    expect(e).toMatchObject({ code: 11 });
  });

  it('the default socket from the environment, absent, with a valid config', async () => {
    const { daemonSocket: _omit, ...noSocket } = conf();
    const e = await errorOf({ ...gc, env: { CORRAL_CNI_SOCKET: join(dir, 'absent.sock') } }, noSocket);
    expect(e).toMatchObject({ code: 11 });
  });

  it('VERSION needs neither a config nor a daemon', async () => {
    const r = await execPlugin(SHIM, { command: 'VERSION', env: { CORRAL_CNI_SOCKET: join(dir, 'absent.sock') } }, 'garbage');
    expect(r.code).toBe(0);
    expect(r.json).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
  });
});
