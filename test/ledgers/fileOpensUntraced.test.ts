import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readOpenLedger } from '../../src/detectors/contamination/openLedger.ts';
import { FILE_OPENS_LEDGER, FileOpenWatcher } from '../../src/ledgers/fileOpens.ts';
import { releasePipeReader } from '../../src/sandbox/runtimeTrace.ts';

describe('a file-open ledger whose tracer never ran', () => {
  it('says so, and the audit reads it as unrecorded rather than as a run that opened nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-untraced-'));
    const ledgerPath = join(dir, FILE_OPENS_LEDGER);
    const watcher = new FileOpenWatcher({
      fifoPath: join(dir, 'strace.pipe'),
      rawPath: join(dir, 'strace.log'),
      ledgerPath,
      trialRoot: dir,
      mounts: [],
      writable: [],
      ignore: [],
      captureDir: join(dir, 'opened'),
      scanner: null,
      mechanismDetail: "strace 6.1, through podman's runtime",
    });
    watcher.start();
    // What the podman sandbox does when strace never ran: the watcher's pipe gets its end.
    await releasePipeReader(join(dir, 'strace.pipe'));
    watcher.untraced('file opens not recorded: the runtime wrapper did not start strace');
    await watcher.stop();
    const ledger = readOpenLedger(ledgerPath);
    expect(ledger.mechanism).toBe('none');
    expect(ledger.detail).toContain('did not start strace');
  }, 5_000);
});
