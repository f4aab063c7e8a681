import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHfEngine } from '../../src/engines/hf.ts';
import { EngineRequestError, openAIChatClient } from '../../src/engines/openaiClient.ts';
import { connectPinnedSocket } from '../../src/engines/sandboxSocket.ts';
import type { ModelSandboxRecord } from '../../src/sandbox/modelSandbox.ts';
import {
  countingListener,
  type HostileReport,
  hostileReports,
  hostRootProbes,
  makeHostileCheckpoint,
  removeHostProbes,
} from '../helpers/hostileCheckpoint.ts';
import { ensureTinyModel, testPython, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

/**
 * The real hf engine in the real bwrap model sandbox, loading a checkpoint whose auto_map points at
 * hostile custom modelling code (trust_remote_code, as the reference passes for Arena-Hard and
 * HealthBench). The harness runs as a process of its own with secrets in its environment and in a
 * PTB_HOME on disk; every attempt of the code to reach them, write outside its scratch or connect
 * out must fail, and the model must still serve.
 */

const CANARY = `sk-canary-${randomBytes(12).toString('hex')}`;
const scratch = mkdtempSync(join(tmpdir(), 'ptb-hostile-'));
const ptbHome = join(scratch, 'ptb-home');
const otherTrial = join(ptbHome, 'trials', 'other-trial');
const rootProbes = hostRootProbes();
const writeTargets = [
  join(ptbHome, 'pwned.txt'),
  join(otherTrial, 'pwned.txt'),
  '/opt/model/pwned.txt',
  ...rootProbes,
];
let python: string;
let hostile: string;
let listener: Awaited<ReturnType<typeof countingListener>>;
const children: ChildProcess[] = [];

function startHarness(mode: 'stop' | 'hang', label: string) {
  const logFile = join(scratch, `${label}.log`);
  const ledger = join(scratch, `${label}.jsonl`);
  const child = spawn(
    process.execPath,
    [join(import.meta.dirname, '../fixtures/sandboxed-engine/harness.mjs')],
    {
      env: {
        ...process.env,
        // What a careless harness environment holds: every one of these must stay out of the sandbox.
        OPENAI_API_KEY: CANARY,
        PTB_GRADER_API_KEY: CANARY,
        ANTHROPIC_API_KEY: CANARY,
        HF_TOKEN: CANARY,
        PTB_HOME: ptbHome,
        PTB_TEST_HARNESS: JSON.stringify({ model: hostile, python, logFile, ledger, mode }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const line = (key: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const found = stdout
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((l) => key in l);
        if (found) resolve(found);
      };
      child.stdout?.on('data', check);
      child.once('exit', (code) => {
        check();
        reject(new Error(`harness exited with ${code}\n${stderr}\n${readLog(logFile)}`));
      });
    });
  return { child, logFile, ledger, line, stderr: () => stderr };
}

function readLog(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}

/** Host pids whose command line mentions `needle` (the sandboxed engine's processes). */
function processesMentioning(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

beforeAll(async () => {
  const tinyModel = await ensureTinyModel();
  python = await testPython();
  mkdirSync(join(ptbHome, 'credentials'), { recursive: true });
  writeFileSync(join(ptbHome, 'credentials', 'openai.json'), JSON.stringify({ apiKey: CANARY }));
  mkdirSync(otherTrial, { recursive: true });
  writeFileSync(join(otherTrial, 'secret.txt'), CANARY);
  listener = await countingListener();
  hostile = makeHostileCheckpoint(tinyModel, join(scratch, 'hostile-model'), {
    read: [
      join(ptbHome, 'credentials', 'openai.json'),
      join(otherTrial, 'secret.txt'),
      join(ptbHome, 'ptb.db'),
      join(homedir(), '.ptb', 'credentials'),
    ],
    list: [ptbHome, join(ptbHome, 'trials'), join(homedir(), '.ptb')],
    write: writeTargets,
    tcpPorts: [listener.port],
    dns: ['example.com'],
    canaries: [CANARY],
  });
}, tinyModelTimeoutMs);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await listener?.close();
  removeHostProbes(rootProbes);
  rmSync(scratch, { recursive: true, force: true });
});

describe('hostile custom code in the sandboxed hf engine', { timeout: 300_000 }, () => {
  it('fails at every theft, write and connection, is recorded, and the model still serves', async () => {
    const harness = startHarness('stop', 'contained');
    const ready = await harness.line('ready');
    expect((ready.reply as { completionTokens: number }).completionTokens).toBeGreaterThan(0);
    await harness.line('stopped');

    const log = readLog(harness.logFile);
    const reports = hostileReports(log);
    expect(reports.length, log).toBeGreaterThanOrEqual(1);
    const report = reports[0] as HostileReport;
    const byKind = (kind: string) => report.attempts.filter((a) => a.kind === kind);
    // The only credential-looking variable is the engine's own per-run key; nothing of the harness.
    expect(byKind('env').map((a) => a.target)).toEqual(['VLLM_API_KEY']);
    for (const kind of ['read', 'list', 'write', 'tcp', 'dns']) {
      const attempts = byKind(kind);
      expect(attempts.length, kind).toBeGreaterThan(0);
      expect(
        attempts.filter((a) => a.ok),
        `${kind} attempts that worked`,
      ).toEqual([]);
    }
    expect(byKind('scratch')).toMatchObject([{ ok: true, target: '/scratch' }]);
    expect(report.attempts.filter((a) => a.leaked)).toEqual([]);
    expect(report.home).toBe('/scratch');
    // The denials are the kernel's: missing paths, a read-only filesystem, no network.
    const writes = byKind('write').map((a) => a.detail);
    expect(writes.some((d) => /Read-only file system/.test(d))).toBe(true);
    expect(byKind('tcp')[0]!.detail).toMatch(/Connection refused|Network is unreachable/);

    // Nothing reached the host: no connection, no file, no secret in anything the run left.
    expect(listener.connections()).toBe(0);
    for (const target of writeTargets) expect(existsSync(target), target).toBe(false);
    expect(readdirSync(hostile).some((name) => name.startsWith('pwned'))).toBe(false);
    const ledgerText = readFileSync(harness.ledger, 'utf8');
    expect(log).not.toContain(CANARY);
    expect(ledgerText).not.toContain(CANARY);

    // The sandbox's own record: what was visible, the env's names, the network, the scratch.
    const records = ledgerText
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as ModelSandboxRecord);
    expect(records).toHaveLength(1);
    const record = records[0]!;
    expect(record.sandbox).toBe('bwrap');
    expect(record.network).toMatch(/^none/);
    expect(record.envNames).not.toContain('OPENAI_API_KEY');
    expect(record.envNames).not.toContain('PTB_HOME');
    expect(record.envNames).not.toContain('HF_TOKEN');
    expect(record.envNames.filter((n) => /(KEY|TOKEN)$/.test(n))).toEqual(['VLLM_API_KEY']);
    expect(record.readOnly).toContainEqual({ host: hostile, sandbox: '/opt/model' });
    expect(record.writable.map((m) => m.sandbox).sort()).toEqual([
      '/cache',
      '/run/ptb/serve',
      '/scratch',
      '/tmp',
    ]);
    expect(record.readOnly.some((m) => m.host.startsWith(ptbHome))).toBe(false);
    expect(record.scratch.sample).toContain('hostile_report.json');
    expect(record.modelUnchanged).toBe(true);
    expect(record.exit.stoppedByHarness).toBe(true);
    // The run's private directory is gone once the engine stopped.
    expect(existsSync(join(scratch, 'contained.sandbox'))).toBe(false);
  });

  it('leaves no engine process behind when the harness is SIGKILLed', async () => {
    const harness = startHarness('hang', 'killed');
    await harness.line('ready');
    expect(processesMentioning('/opt/model').length).toBeGreaterThan(0);
    harness.child.kill('SIGKILL');
    const deadline = Date.now() + 15_000;
    while (processesMentioning('/opt/model').length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(processesMentioning('/opt/model')).toEqual([]);
  });
});

describe('the harness side of a sandboxed engine', { timeout: 300_000 }, () => {
  it('never follows a socket the sandbox swapped for a link to a host socket', async () => {
    const tiny = await ensureTinyModel();
    const engine = createHfEngine({
      python,
      isolation: { sandbox: 'bwrap', gpuIndices: [], reason: 'test' },
    });
    const handle = await engine.start({ model: tiny, logFile: join(scratch, 'swap.log') });
    let decoyConnections = 0;
    const decoyPath = join(scratch, 'decoy.sock');
    const decoy = createServer((socket) => {
      decoyConnections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => decoy.listen(decoyPath, resolve));
    try {
      const socketPath = handle.socketPath!;
      const ok = await openAIChatClient(handle, { retries: 0 }).chat(
        { messages: [{ role: 'user', content: 'hi' }] },
        { maxTokens: 2 },
      );
      expect(ok.completionTokens).toBeGreaterThan(0);
      // What untrusted code in the sandbox could do to the socket directory it can write.
      renameSync(socketPath, `${socketPath}.moved`);
      symlinkSync(decoyPath, socketPath);
      const refused = await openAIChatClient(handle, { retries: 0 })
        .chat({ messages: [{ role: 'user', content: 'hi' }] }, { maxTokens: 2 })
        .catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(EngineRequestError);
      expect((refused as EngineRequestError).kind).toBe('network');
      expect(String((refused as Error).message)).toMatch(/EPTBUNSAFESOCKET|not a Unix socket/);
      expect(decoyConnections).toBe(0);
      // A plain socket of the sandbox's own is acceptable: it is the sandbox answering itself.
      rmSync(socketPath);
      renameSync(`${socketPath}.moved`, socketPath);
      const socket = connectPinnedSocket(socketPath);
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      socket.destroy();
    } finally {
      decoy.close();
      await handle.stop();
    }
  });
});
