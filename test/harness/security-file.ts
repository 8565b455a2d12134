/** A security file as provisioning writes it, read back: which principals it holds in plain text and which as hashes. */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

export interface SecurityFile {
  credentials: Array<{ principal: string; secret?: string; secret_hash?: string }>;
  acls: Record<string, unknown>;
}

export function readSecurityFile(file: string): SecurityFile {
  return parseYaml(readFileSync(file, 'utf8')) as SecurityFile;
}

/** The principals of `sec` whose secret is in plain text, and those held as a hash, each sorted. */
export function principalsBySecret(sec: SecurityFile): { plain: string[]; hashed: string[] } {
  return {
    plain: sec.credentials
      .filter((c) => c.secret)
      .map((c) => c.principal)
      .sort(),
    hashed: sec.credentials
      .filter((c) => c.secret_hash)
      .map((c) => c.principal)
      .sort(),
  };
}
