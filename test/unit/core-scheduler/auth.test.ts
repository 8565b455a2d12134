/**
 * The Authority alone: secrets (scrypt hashes and plain text), run_tasks
 * decisions, operator actions, and the security file's validation.
 */
import { describe, expect, it } from 'vitest';
import type { IncomingMessage } from 'node:http';
import { Authority, hashSecret, operatorActionOf, OPERATOR_ACTIONS, securitySchema, taskIdentity, type SecurityConfigInput } from '../../../core-scheduler/src/master/auth.js';
import { OPERATOR_CALL_TYPES } from '../../../contracts/v1/v1-schema.js';
import { basicAuthHeader } from '../../../contracts/client/auth-header.js';

/** Cheap scrypt parameters: the format and the checks are under test, not the cost. */
const CHEAP = { N: 1024, r: 8, p: 1 };

const authority = (input: SecurityConfigInput): Authority => new Authority(securitySchema.parse(input));
const request = (principal: string, secret: string): IncomingMessage => ({ headers: { authorization: basicAuthHeader(principal, secret) } }) as IncomingMessage;

describe('secrets', () => {
  it('hashSecret writes scrypt$N$r$p$salt$hash with a fresh salt each time', () => {
    const a = hashSecret('s', CHEAP);
    const b = hashSecret('s', CHEAP);
    expect(a).toMatch(/^scrypt\$1024\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
  });

  it('verifies a hashed secret, refuses a wrong one (also once verified), and keeps plain secrets working', async () => {
    const auth = authority({
      credentials: [
        { principal: 'h', secret_hash: hashSecret('right', CHEAP) },
        { principal: 'p', secret: 'plain' },
      ],
    });
    await expect(auth.authenticate(request('h', 'wrong'))).rejects.toThrow(/invalid credentials for principal "h"/);
    await expect(auth.authenticate(request('h', 'right'))).resolves.toBe('h');
    await expect(auth.authenticate(request('h', 'right'))).resolves.toBe('h');
    await expect(auth.authenticate(request('h', 'wrong'))).rejects.toThrow(/invalid credentials/);
    await expect(auth.authenticate(request('h', 'wrong-again'))).rejects.toThrow(/invalid credentials/);
    await expect(auth.authenticate(request('p', 'plain'))).resolves.toBe('p');
    await expect(auth.authenticate(request('p', 'plan'))).rejects.toThrow(/invalid credentials/);
    await expect(auth.authenticate(request('nobody', 'x'))).rejects.toThrow(/invalid credentials for principal "nobody"/);
    await expect(auth.authenticate({ headers: {} } as IncomingMessage)).rejects.toThrow(/authentication required/);
  });

  it('many requests at once with one credential share one check (a fleet reconnecting): none is turned away', async () => {
    const auth = authority({ credentials: [{ principal: 'fleet', secret_hash: hashSecret('shared', CHEAP) }] });
    // More than the checks that may wait (1,024): each running its own scrypt, some would get 503.
    const all = await Promise.all(Array.from({ length: 2000 }, () => auth.authenticate(request('fleet', 'shared'))));
    expect(new Set(all)).toEqual(new Set(['fleet']));
    const wrong = await Promise.allSettled(Array.from({ length: 2000 }, () => auth.authenticate(request('fleet', 'stale'))));
    expect(wrong.every((r) => r.status === 'rejected' && /invalid credentials/.test(String(r.reason)))).toBe(true);
  });

  it('a principal listed twice (a rotation under way) is accepted with either secret', async () => {
    const auth = authority({
      credentials: [
        { principal: 'r', secret_hash: hashSecret('old', CHEAP) },
        { principal: 'r', secret_hash: hashSecret('new', CHEAP) },
      ],
    });
    await expect(auth.authenticate(request('r', 'new'))).resolves.toBe('r');
    await expect(auth.authenticate(request('r', 'old'))).resolves.toBe('r');
    await expect(auth.authenticate(request('r', 'other'))).rejects.toThrow(/invalid credentials/);
  });

  it('the security file must give exactly one of secret and secret_hash, and a well-formed hash', () => {
    expect(() => securitySchema.parse({ credentials: [{ principal: 'a' }] })).toThrow(/exactly one of secret and secret_hash/);
    expect(() => securitySchema.parse({ credentials: [{ principal: 'a', secret: 'x', secret_hash: hashSecret('x', CHEAP) }] })).toThrow(/exactly one/);
    for (const bad of ['md5$x', 'scrypt$1000$8$1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA', 'scrypt$4194304$8$1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA', 'scrypt$1024$8$1$$']) {
      expect(() => securitySchema.parse({ credentials: [{ principal: 'a', secret_hash: bad }] }), bad).toThrow(/scrypt\$N\$r\$p\$salt\$hash/);
    }
  });
});

describe('run_tasks', () => {
  const auth = authority({
    credentials: [],
    acls: {
      run_tasks: [
        { principals: ['web'], users: ['www', 'nobody'] },
        { principals: ['batch'], users: 'ANY' },
        { principals: ['infra'], users: ['root'], capabilities: ['cap_net_admin', 'NET_BIND_SERVICE'] },
        { principals: 'ANY', users: ['shared'] },
        { principals: ['ci'], users: ['builder'], seccomp_unconfined: true },
        { principals: ['ci'], users: ['tester'] },
      ],
    },
  });
  const refusal = (principal: string, user: string, capabilities: string[] = []): string | undefined => auth.taskRefusal(principal, { user, capabilities });

  it('the default user is always allowed; other users need a rule', () => {
    expect(refusal('web', '')).toBeUndefined();
    expect(refusal('stranger', '')).toBeUndefined();
    expect(refusal('web', 'www')).toBeUndefined();
    expect(refusal('web', 'alice')).toMatch(/principal "web" is not allowed to run tasks as user "alice"/);
    expect(refusal('stranger', 'shared')).toBeUndefined();
    expect(refusal('stranger', 'www')).toMatch(/not allowed/);
  });

  it('"ANY" is every user but root; root must be named', () => {
    expect(refusal('batch', 'alice')).toBeUndefined();
    expect(refusal('batch', 'root')).toMatch(/user "root".*root must be listed by name, "ANY" does not include it/);
    expect(refusal('web', 'root')).toMatch(/user "root"/);
    expect(refusal('infra', 'root')).toBeUndefined();
    // Decisions are cached per principal and user: asking again gives the same answer.
    expect(refusal('batch', 'root')).toMatch(/user "root"/);
    expect(refusal('batch', 'alice')).toBeUndefined();
  });

  it('capabilities must be listed by a rule of the principal for that user', () => {
    expect(refusal('infra', 'root', ['NET_ADMIN'])).toBeUndefined();
    expect(refusal('infra', 'root', ['NET_ADMIN', 'NET_BIND_SERVICE'])).toBeUndefined();
    expect(refusal('infra', 'root', ['SYS_ADMIN', 'NET_ADMIN'])).toMatch(/capabilities SYS_ADMIN/);
    expect(refusal('batch', 'alice', ['NET_RAW'])).toMatch(/capabilities NET_RAW/);
    expect(refusal('infra', '', ['NET_ADMIN'])).toBeUndefined();
    expect(refusal('web', '', ['NET_ADMIN'])).toMatch(/the agent's default user the capabilities NET_ADMIN/);
  });

  it('running without seccomp needs a rule of the principal for that user that says seccomp_unconfined', () => {
    const unconfined = (principal: string, user: string): string | undefined => auth.taskRefusal(principal, { user, capabilities: [], seccompUnconfined: true });
    expect(unconfined('ci', 'builder')).toBeUndefined();
    // The default user: any rule of the principal that allows it.
    expect(unconfined('ci', '')).toBeUndefined();
    expect(unconfined('ci', 'tester')).toMatch(/principal "ci" is not allowed to run tasks as user "tester" without seccomp \(acls.run_tasks: .*seccomp_unconfined: true\)/);
    expect(unconfined('batch', 'alice')).toMatch(/without seccomp/);
    expect(unconfined('web', '')).toMatch(/the agent's default user without seccomp/);
    // The user is checked first, with its own message; the cached decision for the plain task is not reused.
    expect(unconfined('ci', 'alice')).toMatch(/not allowed to run tasks as user "alice" \(acls.run_tasks\)/);
    expect(refusal('ci', 'tester')).toBeUndefined();
    expect(unconfined('ci', 'tester')).toMatch(/without seccomp/);
  });

  it('with no run_tasks rule at all, only the default user', () => {
    const none = authority({ credentials: [] });
    expect(none.taskRefusal('anyone', { user: '', capabilities: [] })).toBeUndefined();
    expect(none.taskRefusal('anyone', { user: 'nobody', capabilities: [] })).toMatch(/not allowed/);
  });

  it('authentication off: nothing is refused', () => {
    expect(new Authority(undefined).taskRefusal(undefined, { user: 'root', capabilities: ['SYS_ADMIN'] })).toBeUndefined();
  });

  it("a task's user is command.user, else framework_info.user; capabilities come from linux_info, CAP_ prefix or not", () => {
    expect(taskIdentity('fwuser', { command: { user: 'cmd' } })).toEqual({ user: 'cmd', capabilities: [] });
    expect(taskIdentity('fwuser', { command: {} })).toEqual({ user: 'fwuser', capabilities: [] });
    expect(taskIdentity(undefined, {})).toEqual({ user: '', capabilities: [] });
    const id = taskIdentity('', {
      container: {
        linux_info: { effective_capabilities: { capabilities: ['CAP_NET_ADMIN'] }, bounding_capabilities: { capabilities: ['net_admin', 'CHOWN'] }, capability_info: { capabilities: ['KILL'] } },
      },
    });
    expect(id.capabilities.sort()).toEqual(['CHOWN', 'KILL', 'NET_ADMIN']);
    expect(id.seccompUnconfined).toBeUndefined();
    expect(taskIdentity('', { container: { linux_info: { seccomp: { unconfined: true } } } })).toEqual({ user: '', capabilities: [], seccompUnconfined: true });
    expect(taskIdentity('', { container: { linux_info: { seccomp: { unconfined: false } } } })).toEqual({ user: '', capabilities: [] });
  });
});

describe('operator actions', () => {
  it('every operator call but health and version maps to an action, or to all of them', () => {
    expect(operatorActionOf('GET_HEALTH')).toBeNull();
    expect(operatorActionOf('GET_VERSION')).toBeNull();
    for (const t of OPERATOR_CALL_TYPES) {
      const a = operatorActionOf(t);
      if (t === 'GET_HEALTH' || t === 'GET_VERSION') continue;
      expect(a === undefined || Object.hasOwn(OPERATOR_ACTIONS, a!), t).toBe(true);
    }
    expect(operatorActionOf('SOME_FUTURE_CALL')).toBeUndefined();
    expect(operatorActionOf('toString')).toBeUndefined();
  });

  it('operators may do everything; an action ACL allows that action only; the refusal names it', () => {
    const auth = authority({ credentials: [], acls: { operators: ['admin'], view: ['monitor'], maintenance: 'ANY' } });
    for (const t of ['GET_STATE', 'UPDATE_QUOTA', 'TEARDOWN', 'SOME_FUTURE_CALL']) expect(() => auth.authorizeOperatorCall('admin', t)).not.toThrow();
    expect(() => auth.authorizeOperatorCall('monitor', 'GET_STATE')).not.toThrow();
    expect(() => auth.authorizeOperatorCall('monitor', 'SUBSCRIBE')).not.toThrow();
    expect(() => auth.authorizeOperatorCall('monitor', 'UPDATE_WEIGHTS')).toThrow(/principal "monitor" may not set role weights.*"update_weights" needs acls.update_weights or acls.operators/);
    expect(() => auth.authorizeOperatorCall('monitor', 'SOME_FUTURE_CALL')).toThrow(/not an operator/);
    expect(() => auth.authorizeOperatorCall('someone', 'DRAIN_AGENT')).not.toThrow();
    expect(() => auth.authorizeOperatorCall('someone', 'GET_HEALTH')).not.toThrow();
    expect(() => auth.authorizeOperator('monitor')).toThrow(/not an operator/);
  });
});
