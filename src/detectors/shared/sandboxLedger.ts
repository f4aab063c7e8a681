import { z } from 'zod';

/**
 * `ledgers/sandbox.json`, written by the harness when the agent starts: what the sandbox really
 * was. Decoy keys are listed by hash; their (harmless, fake) values may be listed too so traces and
 * files can be scanned for them — as a list or as a `{NAME: value}` record.
 */
const MountSchema = z.object({ hostPath: z.string(), sandboxPath: z.string() }).passthrough();

const DecoyValueSchema = z.union([
  z.string(),
  z.object({ name: z.string().optional(), value: z.string() }).passthrough(),
]);

export const SandboxLedgerSchema = z
  .object({
    kind: z.string(),
    /** Absent: the mounts were not recorded, so writes outside the workspace cannot be ruled out. */
    writableMounts: z.array(MountSchema).optional(),
    readOnlyMounts: z.array(MountSchema).default([]),
    network: z.unknown().optional(),
    decoyKeys: z.array(z.object({ name: z.string(), sha256: z.string() }).passthrough()).default([]),
    decoyValues: z.union([z.array(DecoyValueSchema), z.record(z.string(), z.string())]).default([]),
  })
  .passthrough();
export type SandboxLedger = z.infer<typeof SandboxLedgerSchema>;

export interface DecoyValue {
  name: string;
  value: string;
}

/** The decoy values with their names (a name is found by hash when only the value is listed). */
export function decoyValues(ledger: SandboxLedger): DecoyValue[] {
  if (!Array.isArray(ledger.decoyValues)) {
    return Object.entries(ledger.decoyValues)
      .map(([name, value]) => ({ name, value }))
      .filter((v) => v.value.length >= 8);
  }
  return ledger.decoyValues
    .map((v, i) =>
      typeof v === 'string'
        ? { name: ledger.decoyKeys[i]?.name ?? `decoy ${i + 1}`, value: v }
        : { name: v.name ?? ledger.decoyKeys[i]?.name ?? `decoy ${i + 1}`, value: v.value },
    )
    .filter((v) => v.value.length >= 8);
}
