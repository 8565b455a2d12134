/**
 * Knowing when containers end, without being their parent: supervisors drop
 * their termination into one exits directory, watched with a single inotify
 * watch (fs.watch), so a thousand containers cost one watch. A slow sweep
 * backs it up — it catches a missed event and notices a supervisor that died
 * without writing anything (killed, or the host lost it).
 */
import { watch, type FSWatcher } from 'node:fs';

export class ExitWatcher {
  private watcher: FSWatcher | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly dir: string,
    /** Called with a container id whose termination may have arrived. */
    private readonly onExit: (containerId: string) => void,
    /** Called periodically to re-check every container still running. */
    private readonly sweep: () => void,
    private readonly sweepMs = 2000,
  ) {}

  start(): void {
    if (this.watcher) return;
    this.watcher = watch(this.dir, (_event, name) => {
      if (name && !name.endsWith('.tmp')) this.onExit(name.toString());
    });
    this.watcher.on('error', () => undefined); // the sweep still runs
    this.watcher.unref();
    this.timer = setInterval(this.sweep, this.sweepMs);
    this.timer.unref();
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
