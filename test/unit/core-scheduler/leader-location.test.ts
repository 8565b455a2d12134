/**
 * The Location a follower sends: scheme-relative `//host:port[/base]` of the
 * leader's URL, as a Mesos master forms it, so a client keeps its scheme and
 * clients that prefix the scheme or match `^//host:port` work as against Mesos.
 */
import { describe, expect, it } from 'vitest';
import { schemeRelative } from '../../../core-scheduler/src/master/http/leader-gate.js';

describe('schemeRelative', () => {
  it('drops the scheme and keeps host and port, as Mesos sends //hostname:port', () => {
    expect(schemeRelative('http://10.0.0.5:5050', 'http://10.0.0.6:5050')).toBe('//10.0.0.5:5050');
    expect(schemeRelative('http://master-a:5050/', 'http://master-b:5050')).toBe('//master-a:5050');
    expect(schemeRelative('http://[fd00::5]:5050', 'http://[fd00::6]:5050')).toBe('//[fd00::5]:5050');
  });

  it('always names the port, the default one included', () => {
    expect(schemeRelative('http://leader', 'http://me:5050')).toBe('//leader:80');
    expect(schemeRelative('https://leader', 'https://me')).toBe('//leader:443');
  });

  it('keeps a base path the leader is served under', () => {
    expect(schemeRelative('http://proxy:8080/master/', 'http://other:8080')).toBe('//proxy:8080/master');
  });

  it('stays absolute when the leader speaks another scheme than this master, or the URL is not one', () => {
    expect(schemeRelative('https://leader:5050', 'http://me:5050')).toBe('https://leader:5050');
    expect(schemeRelative('not a url', 'http://me:5050')).toBe('not a url');
  });

  it('resolves against the request to the leader (as fetch and URL do)', () => {
    const loc = schemeRelative('http://127.0.0.1:5051', 'http://127.0.0.1:5050') + '/api/v1/scheduler?x=1';
    expect(new URL(loc, 'http://127.0.0.1:5050/api/v1/scheduler').href).toBe('http://127.0.0.1:5051/api/v1/scheduler?x=1');
  });
});
