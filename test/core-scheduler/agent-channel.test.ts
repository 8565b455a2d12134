/**
 * The agent channel (GET /api/v1/agent with a WebSocket upgrade): agents'
 * calls one way, the master's events the other, on one connection. Driven by
 * corral's agent session and, for what a misbehaving client may send, by the
 * `ws` library's client directly.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { request } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { basicAuthHeader } from '../../contracts/client/auth-header.js';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { TestFramework } from '../harness/framework.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { until, untilValue } from '../harness/wait.js';
import type { AgentEvent } from '../../contracts/v1/v1.js';

const agentInfo = (hostname: string, id?: string) => ({
  type: 'REGISTER',
  register: {
    agent_info: { hostname, resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: 1 } }], attributes: [], ...(id ? { id: { value: id } } : {}) },
    version: 'test',
    capabilities: [],
    tasks: [],
    frameworks: [],
  },
});

/** A raw channel: its events as they come, and how it closed. */
async function rawChannel(url: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; events: AgentEvent[]; closed: Promise<{ code: number; reason: string }> }> {
  const ws = new WebSocket(url.replace(/^http/, 'ws') + '/api/v1/agent', { headers, perMessageDeflate: false });
  const events: AgentEvent[] = [];
  ws.on('message', (data) => events.push(JSON.parse(String(data)) as AgentEvent));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, events, closed };
}

/** What the server answers a handshake it refuses: status, headers and JSON body. */
function refusedHandshake(url: string, headers: Record<string, string>): Promise<{ status: number; body: { code?: string; message?: string }; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws') + '/api/v1/agent', { headers, perMessageDeflate: false });
    ws.on('unexpected-response', (req, res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += String(c)));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { code?: string; message?: string }, headers: res.headers });
        req.destroy();
      });
    });
    ws.on('open', () => reject(new Error('the handshake was accepted')));
    ws.on('error', () => undefined);
  });
}

function plainGet(url: string, path: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url + path, { headers }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += String(c)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

const metric = async (url: string, pattern: RegExp): Promise<number> => Number(pattern.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? 0);

describe('the agent channel', () => {
  let master: TestMaster;
  const cleanup: Array<() => Promise<unknown> | void> = [];

  beforeAll(async () => {
    master = await startTestMaster();
  });
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
    await master.dispose();
  });

  it('carries an agent: registration, launches, status updates and acknowledgements, with no HTTP request per call', async () => {
    const agent = new SimAgent({ master: master.url, hostname: 'ch-1', resources: 'cpus:4;mem:4096', reconnect: false });
    cleanup.push(() => agent.stop());
    await agent.start();
    expect(agent.session.transport).toBe('channel');
    const posts = () => metric(master.url, /http_requests_total\{route="\/api\/v1\/agent",code="202"\} (\d+)/);
    const before = await posts();

    const fw = new TestFramework(master.url, { name: 'channel-fw' });
    cleanup.push(() => fw.client.close());
    await fw.subscribe();
    const offer = (await fw.offers()).find((o) => o.hostname === 'ch-1')!;
    await fw.launch(offer, [
      { id: 't1', resources: 'cpus:1;mem:128' },
      { id: 't2', resources: 'cpus:1;mem:128' },
    ]);
    await fw.update('t1', 'TASK_RUNNING');
    await fw.update('t2', 'TASK_RUNNING');
    // The acknowledgements came back over the channel: nothing is left to resend.
    await until(() => agent.updates.latestPending(fw.id, 't1') === undefined && agent.updates.latestPending(fw.id, 't2') === undefined, 10_000, 'acknowledgements reach the agent');

    await fw.client.kill('t1', agent.session.agentId!);
    await fw.update('t1', 'TASK_KILLED');
    expect(fw.updates('t1').map((s) => s.state)).toEqual(['TASK_RUNNING', 'TASK_KILLED']);
    // The upgrade is the agent's one request: its updates and heartbeats were not POSTs.
    expect(await posts()).toBe(before);
    expect(await metric(master.url, /http_requests_total\{route="\/api\/v1\/agent",code="101"\} (\d+)/)).toBeGreaterThanOrEqual(1);
    // They are counted as calls of the channel, and the channel as open.
    expect(await metric(master.url, /agent_calls_total\{type="UPDATE",transport="channel"\} (\d+)/)).toBeGreaterThanOrEqual(1);
    expect(await metric(master.url, /agent_channels (\d+)/)).toBeGreaterThanOrEqual(1);
    await fw.client.teardown();
  });

  it('an agent that unregisters over the channel is forgotten; one whose channel breaks is marked disconnected and comes back with its tasks', async () => {
    const gone = new SimAgent({ master: master.url, hostname: 'ch-gone', resources: 'cpus:1;mem:512', reconnect: false });
    const goneId = await gone.start();
    await gone.session.unregister();
    await until(() => !master.master.agents.has(goneId), 10_000, 'the unregistered agent is removed');

    const agent = new SimAgent({ master: master.url, hostname: 'ch-2', resources: 'cpus:2;mem:1024', reconnect: true, updateRetryMs: 200 });
    cleanup.push(() => agent.stop());
    const id = await agent.start();
    const fw = new TestFramework(master.url, { name: 'channel-break', failover_timeout: 3600 });
    cleanup.push(() => fw.client.close());
    await fw.subscribe();
    const offer = await untilValue('an offer of ch-2', async () => (await fw.offers()).find((o) => o.hostname === 'ch-2'), 10_000);
    await fw.launch(offer, [{ id: 'kept', resources: 'cpus:1;mem:128' }]);
    await fw.update('kept', 'TASK_RUNNING');

    agent.session.disconnect();
    // It reconnects by itself, re-registers over a new channel with its task, and the master keeps it.
    await until(() => master.master.agents.get(id)?.status === 'connected' && agent.session.connected, 10_000, 'the agent is back');
    expect(agent.session.transport).toBe('channel');
    expect(master.master.frameworks.get(fw.id)?.tasks.get('kept')?.state).toBe('TASK_RUNNING');
    expect(fw.updates('kept').map((s) => s.state)).toEqual(['TASK_RUNNING']);
  });

  it('a call that fails is answered with an ERROR event and the channel stays up', async () => {
    const { ws, events } = await rawChannel(master.url);
    cleanup.push(() => ws.terminate());
    ws.send('{not json');
    ws.send(JSON.stringify({ type: 'FROB' }));
    ws.send(JSON.stringify({ type: 'REGISTER', register: { agent_info: { hostname: '' } } }));
    await until(() => events.length >= 3, 10_000, 'three ERROR events');
    expect(events.slice(0, 3).map((e) => e.type === 'ERROR' && e.error.code)).toEqual(['MALFORMED_REQUEST', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT']);
    const messages = events.slice(0, 3).map((e) => (e.type === 'ERROR' ? e.error.message : ''));
    expect(messages[0]).toMatch(/^malformed agent call: /);
    expect(messages[1]).toMatch(/unknown call type "FROB"; expected one of REGISTER/);
    expect(messages[2]).toMatch(/REGISTER call/);
    // Still open: a valid REGISTER is answered REGISTERED, and calls right behind it wait for it.
    ws.send(JSON.stringify(agentInfo('raw-1')));
    ws.send(JSON.stringify({ type: 'HEARTBEAT', agent_id: { value: 'not-mine' } }));
    const registered = await untilValue('REGISTERED', async () => events.find((e) => e.type === 'REGISTERED'), 10_000);
    expect(registered.type === 'REGISTERED' && registered.registered.agent_id.value).toBeTruthy();
  });

  it('a channel may speak only for the agent it registered, and only after REGISTER: otherwise it is closed (1008) with the reason', async () => {
    const early = await rawChannel(master.url);
    early.ws.send(JSON.stringify({ type: 'HEARTBEAT', agent_id: { value: 'x' } }));
    expect(await early.closed).toMatchObject({ code: 1008, reason: 'FAILED_PRECONDITION' });
    expect(early.events).toEqual([{ type: 'ERROR', error: { code: 'FAILED_PRECONDITION', message: expect.stringMatching(/before REGISTER/) as unknown } }]);

    const other = new SimAgent({ master: master.url, hostname: 'ch-other', resources: 'cpus:1;mem:512', reconnect: false });
    cleanup.push(() => other.stop());
    const otherId = await other.start();
    const impostor = await rawChannel(master.url);
    impostor.ws.send(JSON.stringify(agentInfo('impostor')));
    await until(() => impostor.events.some((e) => e.type === 'REGISTERED'), 10_000, 'REGISTERED');
    impostor.ws.send(JSON.stringify({ type: 'UNREGISTER', agent_id: { value: otherId } }));
    expect(await impostor.closed).toMatchObject({ code: 1008, reason: 'FORBIDDEN' });
    expect(impostor.events.at(-1)).toMatchObject({ type: 'ERROR', error: { code: 'FORBIDDEN', message: expect.stringMatching(/may not speak for agent/) as unknown } });
    expect(master.master.agents.get(otherId)?.status).toBe('connected');
    // The impostor's own agent is disconnected with its channel.
    const impostorId = (impostor.events.find((e) => e.type === 'REGISTERED') as Extract<AgentEvent, { type: 'REGISTERED' }>).registered.agent_id.value;
    await until(() => master.master.agents.get(impostorId)?.status !== 'connected', 10_000, 'the impostor is disconnected');
  });

  it('calls held behind a pending REGISTER are bounded: past 1,000 the channel is closed (1008, RESOURCE_EXHAUSTED)', async () => {
    // Client frames by hand (FIN, text, masked with a zero key): REGISTER and 1,001 one-byte calls in one write, so the
    // master reads them in one go, before the REGISTER is durable.
    const frame = (text: string): Buffer => {
      const payload = Buffer.from(text);
      const head = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length]) : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
      return Buffer.concat([head, Buffer.alloc(4), payload]);
    };
    const socket = connect(master.port, '127.0.0.1');
    cleanup.push(() => void socket.destroy());
    let received = Buffer.alloc(0);
    socket.on('data', (c: Buffer) => (received = Buffer.concat([received, c])));
    socket.write('GET /api/v1/agent HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    await until(() => received.includes('\r\n\r\n'), 10_000, 'the 101');
    expect(received.toString('latin1')).toMatch(/^HTTP\/1\.1 101 /);
    socket.write(Buffer.concat([frame(JSON.stringify(agentInfo('flood'))), ...Array.from({ length: 1001 }, () => frame('x'))]));
    // The server's close frame: opcode 8, then the code 1008 and the reason.
    const close = Buffer.concat([Buffer.from([0x03, 0xf0]), Buffer.from('RESOURCE_EXHAUSTED')]);
    await until(() => received.includes(close), 10_000, 'the close frame');
    expect(received.toString('latin1')).toContain('more than 1000 calls sent before REGISTER was answered');
  });

  it('a message over the body limit (4 MiB) closes the channel (1009) without harm to the master', async () => {
    const big = await rawChannel(master.url);
    big.ws.send('x'.repeat(4 * 1024 * 1024 + 1));
    expect((await big.closed).code).toBe(1009);
    expect((await fetch(`${master.url}/health`)).status).toBe(200);
  });

  it('the upgrade is refused over HTTP, readably: without credentials when authentication is on, from a browser, without asking to upgrade', async () => {
    expect(await refusedHandshake(master.url, { Origin: 'https://evil.example' })).toMatchObject({
      status: 403,
      body: { code: 'FORBIDDEN', message: expect.stringMatching(/not for browsers/) as unknown },
    });
    const plain = await plainGet(master.url, '/api/v1/agent', {});
    expect(plain.status).toBe(426);
    expect(JSON.parse(plain.text)).toMatchObject({ code: 'UPGRADE_REQUIRED', message: expect.stringMatching(/opens a WebSocket/) as unknown });

    const dir = mkdtempSync(join(tmpdir(), 'corral-channel-'));
    const security = join(dir, 'security.json');
    writeFileSync(security, JSON.stringify({ credentials: [{ principal: 'node-a', secret: 'node-a-secret' }], acls: { agents: ['node-a'] } }));
    const secured = await startTestMaster({ insecure: true, noAuth: false, credentials: security }, dir);
    cleanup.push(() => secured.dispose());
    const anonymous = await refusedHandshake(secured.url, {});
    expect(anonymous).toMatchObject({ status: 401, body: { code: 'UNAUTHENTICATED' } });
    const wrong = await refusedHandshake(secured.url, { authorization: basicAuthHeader('node-a', 'guess') });
    expect(wrong.status).toBe(401);
    // With its credentials the agent registers over the channel.
    const agent = new SimAgent({ master: secured.url, principal: 'node-a', secret: 'node-a-secret', hostname: 'secured', resources: 'cpus:1;mem:512', reconnect: false });
    cleanup.push(() => agent.stop());
    await agent.start();
    expect(agent.session.transport).toBe('channel');
  });

  it('other requests that ask to switch protocols are served as plain HTTP, or refused when they carry a body', async () => {
    // curl --http2 on an http:// URL asks for h2c this way; the server answers in HTTP/1.1.
    const health = await plainGet(master.url, '/health', { Connection: 'Upgrade, HTTP2-Settings', Upgrade: 'h2c', 'HTTP2-Settings': 'AAMAAABkAARAAAAAAAIAAAAA' });
    expect(health.status).toBe(200);
    expect(JSON.parse(health.text)).toMatchObject({ healthy: true });

    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect(master.port, '127.0.0.1', () =>
        s.write('POST /api/v1/scheduler HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}'),
      );
      let text = '';
      s.on('data', (c: Buffer) => (text += String(c)));
      s.on('end', () => resolve(text));
      s.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({
      code: 'MALFORMED_REQUEST',
      message: 'this server does not switch to "h2c" for a request with a body; send it without the Upgrade header',
    });
  });
});

describe('a master that serves no agent channel', () => {
  it('agents register over POST instead, and run tasks as well', async () => {
    const master = await startTestMaster({ agents: { heartbeatIntervalMs: 200, maxMissedHeartbeats: 3, unreachableTimeoutMs: 1000, reregisterTimeoutMs: 5000, channel: false } });
    const agent = new SimAgent({ master: master.url, hostname: 'post-1', resources: 'cpus:1;mem:512', reconnect: false });
    const fw = new TestFramework(master.url, { name: 'post-fw' });
    try {
      await agent.start();
      expect(agent.session.transport).toBe('http');
      await fw.subscribe();
      const [offer] = await fw.offers();
      await fw.launch(offer!, [{ id: 'p1', resources: 'cpus:1;mem:128' }]);
      await fw.update('p1', 'TASK_RUNNING');
      await until(() => agent.updates.latestPending(fw.id, 'p1') === undefined, 10_000, 'the acknowledgement reaches the agent');
      expect(await metric(master.url, /agent_calls_total\{type="UPDATE",transport="http"\} (\d+)/)).toBeGreaterThanOrEqual(1);
    } finally {
      await fw.client.close();
      await agent.stop();
      await master.dispose();
    }
  });
});

describe('a master shutting down', () => {
  it('ends its agent channels, even one whose peer never answers', async () => {
    const master = await startTestMaster();
    // A peer that completes the handshake and then reads nothing and answers nothing.
    const socket = connect(master.port, '127.0.0.1');
    const switched = new Promise<string>((resolve, reject) => {
      let text = '';
      socket.on('data', (c: Buffer) => {
        text += c.toString('latin1');
        if (text.includes('\r\n\r\n')) resolve(text.slice(0, text.indexOf('\r\n')));
      });
      socket.on('error', reject);
    });
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write('GET /api/v1/agent HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    expect(await switched).toBe('HTTP/1.1 101 Switching Protocols');
    socket.pause();
    await master.dispose();
    await closed;
  });
});
