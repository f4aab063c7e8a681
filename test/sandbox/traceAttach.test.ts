import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { fileOpenTracer } from '../../src/sandbox/bwrap.ts';
import { attachFileOpenTracer, processTree } from '../../src/sandbox/traceAttach.ts';

/**
 * strace attached from outside to a running process tree (how the podman sandbox records file
 * opens; the container end to end is test/trial/podmanTrial.test.ts).
 */
describe('attaching the file-open tracer', () => {
  it('lists a process with its children and grandchildren', async () => {
    const root = spawn('sh', ['-c', '(sleep 5; true) & sleep 5; true'], {
      stdio: 'ignore',
      detached: true,
    });
    try {
      let tree: number[] = [];
      for (let i = 0; i < 100 && tree.length < 4; i++) {
        await sleep(20);
        tree = processTree(root.pid!);
      }
      expect(tree[0]).toBe(root.pid);
      expect(tree).toHaveLength(4); // sh, its sleep, the subshell, its sleep
      // Kernels without per-thread child lists: the same tree from every process's parent.
      expect(processTree(root.pid!, 'scan').sort()).toEqual([...tree].sort());
    } finally {
      process.kill(-root.pid!, 'SIGKILL');
    }
  });

  it.runIf(fileOpenTracer().ok)(
    'is in before the process goes on: its later opens and children are recorded',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'ptb-attach-'));
      const out = join(dir, 'strace.out');
      const marker = join(dir, 'marker.txt');
      const target = spawn('sh', ['-c', `sleep 1; echo x > ${marker}; cat ${marker} > /dev/null`], {
        stdio: 'ignore',
      });
      const exited = new Promise((resolve) => target.once('exit', resolve));
      const attached = await attachFileOpenTracer(fileOpenTracer().strace!, target.pid!, out);
      expect(attached.ok, attached.ok ? '' : attached.detail).toBe(true);
      await exited;
      if (attached.ok) await new Promise((resolve) => attached.tracer.once('exit', resolve));
      const trace = readFileSync(out, 'utf8');
      expect(trace).toMatch(new RegExp(`execve\\("[^"]*cat", \\["cat", "${marker}"\\]`));
      expect(trace).toContain(`"${marker}", O_RDONLY`);
      expect(trace).toMatch(new RegExp(`"${marker}", O_WRONLY\\|O_CREAT\\|O_TRUNC`));
    },
  );

  it('says why when strace cannot run', async () => {
    const target = spawn('sleep', ['5'], { stdio: 'ignore' });
    try {
      const attached = await attachFileOpenTracer('/nonexistent/strace', target.pid!, '/dev/null', 2_000);
      expect(attached.ok).toBe(false);
      expect(attached.ok ? '' : attached.detail).toMatch(/strace (did not start|exited|did not attach)/);
    } finally {
      target.kill('SIGKILL');
    }
  });
});
