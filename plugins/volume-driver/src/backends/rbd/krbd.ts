/**
 * Attach through the kernel rbd client (`rbd map`), for production hosts
 * whose kernel has it. `noshare` gives each mapping its own Ceph client, so
 * fencing one volume's data path does not fence the host's other volumes.
 */
import { CorralError } from '../../../../../contracts/errors.js';
import type { Attachment } from '../../backend.js';
import { exec } from '../../../../../common/sys/exec.js';
import type { AttachedDevice, AttachMethod, CephClientSettings } from './method.js';

export class KernelRbdAttach implements AttachMethod {
  readonly name = 'krbd' as const;

  constructor(private readonly ceph: CephClientSettings) {}

  private args(): string[] {
    const id = this.ceph.clientName.replace(/^client\./, '');
    return ['-c', this.ceph.confFile, '--id', id, ...(this.ceph.keyring ? ['--keyring', this.ceph.keyring] : [])];
  }

  async attach(pool: string, image: string, _workDir: string, save: (state: Attachment) => Promise<void>): Promise<AttachedDevice> {
    const timeoutMs = this.ceph.dataPathTimeoutSeconds * 1000;
    const out = await exec('rbd', ['map', '--pool', pool, '--image', image, '--options', `noshare,osd_request_timeout=${this.ceph.dataPathTimeoutSeconds}`, ...this.args()], { timeoutMs });
    const device = out.trim().split('\n').pop() ?? '';
    if (!/^\/dev\/rbd\d+$/.test(device)) throw new CorralError('INTERNAL', `rbd map printed an unexpected device "${device}"`);
    const state: Attachment = { method: this.name, device, pool, image };
    await save(state);
    return { device, state };
  }

  /** A blocklisted kernel client already fails its I/O (osd_request_timeout bounds the rest); detach then forces the unmap. */
  async cut(_state: Attachment): Promise<void> {}

  async detach(state: Attachment): Promise<void> {
    if (typeof state.device !== 'string') return;
    const force = state.cut === true ? ['-o', 'force'] : [];
    await exec('rbd', ['unmap', ...force, state.device, ...this.args()], { timeoutMs: this.ceph.dataPathTimeoutSeconds * 1000 }).catch((err: Error) => {
      if (!/not mapped|No such file|does not exist/i.test(err.message)) throw err;
    });
  }
}
