/**
 * Suite-wide teardown: after the last test file, nothing the tests made may
 * remain on the host (processes, mounts, loop devices, namespaces, cgroups).
 */
import { findLeftovers as leftoversIn } from './harness/sweep.js';
import { TEST_ROOT } from './harness/resources.js';

const findLeftovers = (): string[] => leftoversIn(TEST_ROOT);

export default function setup(): () => void {
  const before = new Set(findLeftovers());
  return () => {
    const left = findLeftovers().filter((l) => !before.has(l));
    if (left.length) throw new Error(`the test suite left behind:\n  ${left.join('\n  ')}`);
  };
}
