import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readOpenLedger } from '../../src/detectors/contamination/openLedger.ts';
import { FILE_OPENS_LEDGER, FileOpenWatcher } from '../../src/ledgers/fileOpens.ts';
import { releasePipeReader } from '../../src/sandbox/traceAttach.ts';

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
      mechanismDetail: 'strace 6.1, attached to the container',
    });
    watcher.start();
    // What the podman sandbox does when strace never attached: the watcher's pipe gets its end.
    await releasePipeReader(join(dir, 'strace.pipe'));
    watcher.untraced('file opens not recorded: strace did not attach within 15 s');
    await watcher.stop();
    const ledger = readOpenLedger(ledgerPath);
    expect(ledger.mechanism).toBe('none');
    expect(ledger.detail).toContain('did not attach');
  }, 5_000);
});
