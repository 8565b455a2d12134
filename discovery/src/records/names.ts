/**
 * DNS labels from free-form names (task, framework, service, host names):
 * lower-case, letters, digits and hyphens, no leading or trailing hyphen,
 * as RFC 1123 allows (63 characters) or, like Mesos-DNS, RFC 952 (24
 * characters, starting with a letter).
 */
import { createHash } from 'node:crypto';

export type LabelRule = 'rfc1123' | 'rfc952';

const MAX_LABEL: Record<LabelRule, number> = { rfc1123: 63, rfc952: 24 };

/** The label for `raw`, or '' when nothing usable is left (the caller then publishes no name). */
export function sanitizeLabel(raw: string, rule: LabelRule = 'rfc1123'): string {
  let s = raw.toLowerCase().replace(/[^a-z0-9-]+/g, '-');
  s = rule === 'rfc952' ? s.replace(/^[^a-z]+/, '') : s.replace(/^-+/, '');
  return s.slice(0, MAX_LABEL[rule]).replace(/-+$/, '');
}

/**
 * The stable label of instance `index` of a task label (`web`, 1 → `web-1`):
 * the task part is shortened, never the index, so two instances never share
 * a label.
 */
export function instanceLabel(task: string, index: string, rule: LabelRule = 'rfc1123'): string {
  const head = task.slice(0, MAX_LABEL[rule] - index.length - 1).replace(/-+$/, '');
  return head ? `${head}-${index}` : '';
}

/** Service names in SRV owner names keep a leading underscore label: `_web._tcp`. */
export function srvLabel(label: string): string {
  return `_${label}`;
}

/** Short stable tag of an id, to give each task instance a unique name. */
export function shortHash(id: string): string {
  return createHash('sha1').update(id).digest('hex').slice(0, 5);
}

/** Consul's address names: 10.0.0.1 → 0a000001.addr (IPv6: the 32 hex digits). */
export function addrLabel(ip: string): string {
  if (ip.includes(':')) {
    const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const all = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
    return all
      .map((p) => p.padStart(4, '0'))
      .join('')
      .toLowerCase();
  }
  return ip
    .split('.')
    .map((o) => Number(o).toString(16).padStart(2, '0'))
    .join('');
}
