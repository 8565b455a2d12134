/**
 * Consul ACL rules as corral reads them: HCL and JSON forms, refusal of what
 * does not parse, and the lookup order of Consul's policy authorizer (exact
 * rule, else longest prefix, else the default policy; deny wins a merge).
 */
import { describe, it, expect } from 'vitest';
import { parseRules } from '../../../discovery/src/acl/rules.js';
import { Authorizer } from '../../../discovery/src/acl/authorizer.js';
import { isCorralError } from '../../../contracts/errors.js';

const authz = (texts: string[], def: 'allow' | 'deny' = 'deny'): Authorizer => Authorizer.of(texts.map(parseRules), def, 'acc');

describe('ACL rules', () => {
  it('parses HCL blocks, bare policies and comments, and the JSON form alike', () => {
    const hcl = parseRules(`
      # app config
      key_prefix "app/" { policy = "write" }
      key "app/locked" { policy = "read" }   // exact
      service "web" {
        policy = "write"
        intentions = "read"
      }
      /* every node */ node_prefix "" { policy = "read" }
      acl = "read"
    `);
    expect(hcl.rules).toEqual([
      { resource: 'key', prefix: true, segment: 'app/', access: 'write' },
      { resource: 'key', prefix: false, segment: 'app/locked', access: 'read' },
      { resource: 'service', prefix: false, segment: 'web', access: 'write' },
      { resource: 'node', prefix: true, segment: '', access: 'read' },
    ]);
    expect(hcl.globals).toEqual({ acl: 'read' });
    const json = parseRules('{"key_prefix": {"app/": {"policy": "write"}}, "operator": "read"}');
    expect(json.rules).toEqual([{ resource: 'key', prefix: true, segment: 'app/', access: 'write' }]);
    expect(json.globals).toEqual({ operator: 'read' });
  });

  it('refuses rules it cannot read with a 400, never grants by accident', () => {
    for (const bad of [
      'key_prefix "" { policy = "admin" }',
      'kee "x" { policy = "read" }',
      'service "x" { policy = "list" }',
      'key "x" { policy = "read"',
      'acl = "own"',
      '{"key": 1}',
      'key_prefix "unterminated { policy = "read" }',
    ]) {
      let err: unknown;
      try {
        parseRules(bad);
      } catch (e) {
        err = e;
      }
      expect(isCorralError(err, 'INVALID_ARGUMENT'), bad).toBe(true);
      expect((err as Error).message).toMatch(/^Failed to parse ACL rules/);
    }
  });

  it('an exact rule beats prefixes, the longest prefix beats shorter ones, the default covers the rest', () => {
    const a = authz(['key_prefix "" { policy = "read" } key_prefix "app/" { policy = "write" } key_prefix "app/secret/" { policy = "deny" } key "app/secret/shared" { policy = "read" }']);
    expect(a.allowed('key', 'other', 'read')).toBe(true);
    expect(a.allowed('key', 'other', 'write')).toBe(false);
    expect(a.allowed('key', 'app/x', 'write')).toBe(true);
    expect(a.allowed('key', 'app/secret/k', 'read')).toBe(false);
    expect(a.allowed('key', 'app/secret/shared', 'read')).toBe(true);
    expect(a.allowed('key', 'app/secret/shared', 'write')).toBe(false);
    expect(a.allowed('service', 'web', 'read')).toBe(false);
    expect(authz([], 'allow').allowed('service', 'web', 'write')).toBe(true);
    expect(a.allowedGlobal('acl', 'read')).toBe(false);
  });

  it('merging policies: deny beats write beats list beats read on the same segment', () => {
    expect(authz(['service "web" { policy = "write" }', 'service "web" { policy = "deny" }']).allowed('service', 'web', 'read')).toBe(false);
    expect(authz(['service "web" { policy = "read" }', 'service "web" { policy = "write" }']).allowed('service', 'web', 'write')).toBe(true);
    expect(authz(['key_prefix "a/" { policy = "read" }', 'key_prefix "a/" { policy = "list" }']).allowed('key', 'a/b', 'list')).toBe(true);
  });

  it('recursive writes need write on the prefix and on every rule inside it; explicit grants are told apart from the default', () => {
    const a = authz(['key_prefix "app/" { policy = "write" } key "app/ro" { policy = "read" }'], 'allow');
    expect(a.allowedKeyWritePrefix('app/')).toBe(false);
    expect(a.allowedKeyWritePrefix('app/sub/')).toBe(true);
    expect(a.allowedKeyWritePrefix('other/')).toBe(true);
    expect(a.grantsExplicitly('service', 'web', 'write')).toBe(false);
    expect(a.allowed('service', 'web', 'write')).toBe(true);
    expect(Authorizer.of([], 'deny', 'm', true).grantsExplicitly('service', 'web', 'write')).toBe(true);
  });
});
