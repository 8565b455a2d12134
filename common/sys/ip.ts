/**
 * iproute2's `ip`, for set-up work (named namespaces, lab cables and bridges)
 * where a plain command is the clearest tool; the CNI data path uses netlink
 * (common/netkit) instead.
 */
import { exec } from './exec.js';

/** Runs `ip ARGS…`; resolves with its output, rejects with a CorralError naming the command and ip's message. */
export function ip(args: string[], timeoutMs = 15_000): Promise<string> {
  return exec('ip', args, { timeoutMs });
}
