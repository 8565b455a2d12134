/**
 * What one small socket write costs the writer on this machine: 50,000 writes
 * of 300 bytes over loopback TCP to a reader in another process, spread over
 * many sockets or few. It tells whether a daemon's write syscalls are worth
 * batching (see the placement analysis in docs/benchmarks.md).
 *
 * Usage: node dist/bench/loopback-writes.js [--writes 50000] [--bytes 300]
 */
import { fork } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { flag } from './volume-common.js';

if (process.argv[2] === 'reader') {
  const server = createServer((s) => s.on('data', () => undefined)).listen(0, '127.0.0.1', () => process.send!((server.address() as { port: number }).port));
} else {
  const WRITES = flag('--writes', 50_000);
  const message = 'x'.repeat(flag('--bytes', 300));
  const reader = fork(fileURLToPath(import.meta.url), ['reader']);
  const port = await new Promise<number>((resolve) => reader.once('message', (p) => resolve(p as number)));
  for (const sockets of [1000, 4]) {
    const socks = await Promise.all(
      Array.from(
        { length: sockets },
        () =>
          new Promise<Socket>((resolve) => {
            const s = connect(port, '127.0.0.1', () => resolve(s));
            s.setNoDelay(true);
          }),
      ),
    );
    // Ten writes per event-loop turn, each to the next socket, like a daemon answering calls.
    const cpu0 = process.cpuUsage();
    let done = 0;
    await new Promise<void>((resolve) => {
      const turn = (): void => {
        for (let j = 0; j < 10 && done < WRITES; j++, done++) socks[done % sockets]!.write(message);
        if (done < WRITES) setImmediate(turn);
        else resolve();
      };
      turn();
    });
    const cpu = process.cpuUsage(cpu0);
    console.log(
      `${`${WRITES} writes of ${message.length} B to ${sockets} sockets: writer CPU per write`.padEnd(64)} ${((cpu.user + cpu.system) / WRITES).toFixed(1).padStart(6)} µs  (user ${(cpu.user / WRITES).toFixed(1)}, kernel ${(cpu.system / WRITES).toFixed(1)})`,
    );
    for (const s of socks) s.destroy();
  }
  reader.kill();
}
