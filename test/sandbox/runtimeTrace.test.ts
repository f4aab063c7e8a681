import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileOpenTracer } from '../../src/sandbox/bwrap.ts';
import {
  FILE_OPENS_ANNOTATION,
  runtimeWrapper,
  runtimeWrapperScript,
  traceMarker,
} from '../../src/sandbox/runtimeTrace.ts';

/**
 * The runtime wrapper podman runs instead of its OCI runtime (the container end to end is
 * test/trial/podmanTrial.test.ts): a `create` whose bundle names a pipe runs under strace; every other
 * call, and a create without the annotation, goes straight to the real runtime.
 */
describe.runIf(fileOpenTracer().ok)('the file-open runtime wrapper', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ptb-runtime-'));
  const calls = join(dir, 'calls.txt');
  const opened = join(dir, 'opened-by-runtime.txt');
  writeFileSync(opened, 'x');
  // A stand-in runtime: records its arguments and reads a file (what strace must see).
  const real = join(dir, 'real-runtime');
  writeFileSync(real, `#!/bin/sh\necho "$@" >> ${calls}\ncat ${opened} > /dev/null\n`, { mode: 0o755 });
  const wrapper = runtimeWrapper(real, fileOpenTracer().strace!);
  const bundle = (annotated: string | null) => {
    const b = mkdtempSync(join(dir, 'bundle-'));
    const annotations = annotated ? { [FILE_OPENS_ANNOTATION]: annotated } : {};
    writeFileSync(join(b, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', annotations }));
    return b;
  };

  it('traces a create whose bundle names the pipe, and marks it traced', async () => {
    const pipe = join(dir, 'strace.pipe');
    expect(spawnSync('mkfifo', [pipe]).status).toBe(0);
    let trace = '';
    const reader = new Promise<void>((resolve) => {
      const stream = createReadStream(pipe);
      stream.on('data', (chunk) => {
        trace += chunk.toString();
      });
      stream.on('end', resolve);
    });
    const b = bundle(pipe);
    // Asynchronously: the pipe's reader must be open while strace opens it for writing.
    const child = spawn(wrapper, ['--root', '/run/x', 'create', '--bundle', b, 'ctr-1'], { stdio: 'ignore' });
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    await reader; // strace (detached) ends with its last tracee and closes the pipe
    expect(existsSync(traceMarker(pipe))).toBe(true);
    expect(trace).toContain(`"${opened}", O_RDONLY`);
    expect(trace).toMatch(/execve\("[^"]*real-runtime", \[.*"create"/);
  });

  it('runs the create untraced, unmarked, where strace cannot trace', () => {
    const broken = join(dir, 'broken-strace');
    writeFileSync(broken, '#!/bin/sh\necho "ptrace: Operation not permitted" >&2\nexit 1\n', { mode: 0o755 });
    const pipe = join(dir, 'untraced.pipe');
    expect(spawnSync('mkfifo', [pipe]).status).toBe(0);
    const b = bundle(pipe);
    const run = spawnSync(runtimeWrapper(real, broken), ['create', '--bundle', b, 'ctr-3'], {
      encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    expect(existsSync(traceMarker(pipe))).toBe(false);
    expect(readFileSync(calls, 'utf8')).toContain(`create --bundle ${b} ctr-3`);
  });

  it('passes every other call, and an unannotated create, straight to the real runtime', () => {
    const plain = bundle(null);
    mkdirSync(join(dir, 'x'), { recursive: true });
    for (const args of [
      ['state', 'ctr-1'],
      ['create', '--bundle', plain, 'ctr-2'],
      ['delete', '--force', 'ctr-1'],
    ]) {
      const run = spawnSync(wrapper, args, { encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
    }
    const lines = spawnSync('cat', [calls], { encoding: 'utf8' }).stdout.trim().split('\n');
    expect(lines.slice(-3)).toEqual([
      'state ctr-1',
      `create --bundle ${plain} ctr-2`,
      'delete --force ctr-1',
    ]);
  });
});

describe('where the runtime wrapper is kept', () => {
  it('never runs a file planted at its predictable path: other content or a folder others may write', () => {
    const fakeRuntime = join(mkdtempSync(join(tmpdir(), 'ptb-rt-plant-')), 'runc');
    const first = runtimeWrapper(fakeRuntime, '/usr/bin/strace');
    expect(readFileSync(first, 'utf8')).toBe(runtimeWrapperScript(fakeRuntime, '/usr/bin/strace'));
    expect(runtimeWrapper(fakeRuntime, '/usr/bin/strace')).toBe(first); // reused while intact
    writeFileSync(first, '#!/bin/sh\necho planted\n');
    const second = runtimeWrapper(fakeRuntime, '/usr/bin/strace');
    expect(second).not.toBe(first);
    expect(readFileSync(second, 'utf8')).toBe(runtimeWrapperScript(fakeRuntime, '/usr/bin/strace'));
    rmSync(first);
    writeFileSync(first, runtimeWrapperScript(fakeRuntime, '/usr/bin/strace'), { mode: 0o755 });
    chmodSync(dirname(first), 0o777); // the right text, but anyone could swap it
    expect(runtimeWrapper(fakeRuntime, '/usr/bin/strace')).not.toBe(first);
  });
});
