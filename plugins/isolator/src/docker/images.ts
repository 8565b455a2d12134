/**
 * Making sure a task's Docker image is on the host: used as is when present
 * (unless the task forces a pull), else pulled. An image that is neither
 * here nor pullable is a bad task definition, reported with Docker's reason.
 */
import type Dockerode from 'dockerode';
import { CorralError, invalid } from '../../../../contracts/errors.js';

/** Docker's own message from a dockerode error (its JSON body), else the error's. */
export function dockerMessage(err: unknown): string {
  const e = err as { json?: { message?: string }; message?: string };
  return (e?.json?.message ?? e?.message ?? String(err)).trim();
}

export async function ensureImage(docker: Dockerode, name: string, forcePull: boolean): Promise<void> {
  if (!forcePull) {
    try {
      await docker.getImage(name).inspect();
      return;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw new CorralError('UNAVAILABLE', `cannot inspect image ${name}: ${dockerMessage(err)}`);
    }
  }
  try {
    const stream = await docker.pull(name);
    const events = await new Promise<Array<{ error?: string }>>((resolve, reject) =>
      docker.modem.followProgress(stream, (err, out) => (err ? reject(err) : resolve(out as Array<{ error?: string }>))),
    );
    const failed = events.find((e) => e.error);
    if (failed) throw new Error(failed.error);
  } catch (err) {
    throw invalid(`unknown image ${name}: it is not on this host and cannot be pulled (${dockerMessage(err)})`);
  }
}
