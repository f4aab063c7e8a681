import { randomBytes } from 'node:crypto';

/** Sortable, readable ids: `<prefix>-<yyyymmdd-hhmmss>-<6 hex>`. */
export function newId(prefix: string, now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${prefix}-${stamp}-${randomBytes(3).toString('hex')}`;
}
