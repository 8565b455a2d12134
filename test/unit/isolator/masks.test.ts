import { describe, expect, it } from 'vitest';
import { outermost } from '../../../plugins/isolator/src/native/isolators/namespaces.js';

describe('masked paths of a task without an image', () => {
  it('keeps only the outermost of nested masks, parents first', () => {
    // The agent's run directory lies inside /run/corral, listed after it, as corral up configures them.
    const masks = outermost(['/run/corral/containerizer', '/var/lib/corral/agent', '/etc/corral', '/var/lib/corral', '/run/corral', '/run/docker']);
    expect([...masks].sort()).toEqual(['/etc/corral', '/run/corral', '/run/docker', '/var/lib/corral']);
  });

  it('keeps siblings that share a prefix but not a directory, and drops repeats', () => {
    expect([...outermost(['/run/docker.sock', '/run/docker', '/run/docker', '/run/dockerd/x'])].sort()).toEqual(['/run/docker', '/run/docker.sock', '/run/dockerd/x']);
  });
});
