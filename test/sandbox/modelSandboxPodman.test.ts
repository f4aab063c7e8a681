import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForHealth } from '../../src/engines/processes.ts';
import { pinnedSocketAgent } from '../../src/engines/sandboxSocket.ts';
import { type ModelSandboxRecord, startSandboxedServer } from '../../src/sandbox/modelSandbox.ts';
import { podmanCapabilities } from '../../src/sandbox/podman.ts';
import { countingListener } from '../helpers/hostileCheckpoint.ts';
import { ensureTinyModel, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';
import { ensureRootfsImage } from './podmanImage.ts';

/**
 * The model sandbox on podman (what a trial in the podman sandbox gets for its final evaluation): a
 * server of the image's own programs (here the Debian test image's node: the agent image's Python
 * and vLLM are not buildable offline) over the checkpoint, reached through the inbound socket; the
 * same isolation as bwrap: checkpoint read-only, no network, allow-listed environment, scratch only.
 */

// A server in the image's node: /health, and /probe, which reports what it could reach.
const SERVER_JS = `
const http = require('node:http'), fs = require('node:fs'), net = require('node:net');
const [port, hostPort, secretPath] = process.argv.slice(1);
const tryIt = (f) => { try { return f(); } catch (e) { return e.code || String(e); } };
http.createServer((req, res) => {
  if (req.url === '/health') return res.end('ok');
  const out = {
    modelType: JSON.parse(fs.readFileSync('/opt/model/config.json', 'utf8')).model_type,
    env: Object.keys(process.env).sort(),
    uid: process.getuid(),
    secret: tryIt(() => fs.readFileSync(secretPath, 'utf8')),
    modelWrite: tryIt(() => { fs.writeFileSync('/opt/model/pwned', 'x'); return 'written'; }),
    rootWrite: tryIt(() => { fs.writeFileSync('/pwned', 'x'); return 'written'; }),
    scratchWrite: tryIt(() => { fs.writeFileSync('/scratch/left.txt', 'x'); return 'written'; }),
  };
  const socket = net.connect(Number(hostPort), '127.0.0.1');
  socket.on('connect', () => { out.tcp = 'connected'; socket.destroy(); res.end(JSON.stringify(out)); });
  socket.on('error', (e) => { out.tcp = e.code; res.end(JSON.stringify(out)); });
}).listen(Number(port), '127.0.0.1');
`;

const dir = mkdtempSync(join(tmpdir(), 'ptb-model-podman-'));
let image: string;
let model: string;

beforeAll(async () => {
  const caps = podmanCapabilities();
  expect(caps.available, `podman is needed (scripts/setup.sh installs it): ${caps.reason}`).toBe(true);
  image = ensureRootfsImage();
  model = await ensureTinyModel();
}, tinyModelTimeoutMs);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('startSandboxedServer on podman (image programs)', { timeout: 180_000 }, () => {
  it('serves through the inbound socket with the checkpoint read-only and nothing else', async () => {
    const listener = await countingListener();
    const secret = join(dir, 'ptb-home', 'credentials');
    mkdirSync(join(dir, 'ptb-home'));
    writeFileSync(secret, 'sk-harness-secret');
    const ledgerFile = join(dir, 'ledger.jsonl');
    const server = await startSandboxedServer({
      kind: 'podman',
      podman: { image },
      model,
      argvFor: (port) => ['node', '-e', SERVER_JS, String(port), String(listener.port), secret],
      workDir: join(dir, 'run'),
      hostEnv: { OPENAI_API_KEY: 'sk-harness-secret', PTB_HOME: join(dir, 'ptb-home') },
      logFile: join(dir, 'server.log'),
      ledgerFile,
      label: 'podman-probe',
      killGraceMs: 2_000,
    });
    const agent = pinnedSocketAgent(server.socketPath);
    try {
      await waitForHealth({
        url: 'http://localhost/health',
        what: 'the probe server',
        timeoutMs: 120_000,
        proc: server,
        agent,
      });
      const body = await new Promise<string>((resolve, reject) => {
        http
          .get({ agent, host: 'localhost', path: '/probe' }, (res) => {
            let text = '';
            res.on('data', (c: Buffer) => {
              text += c.toString();
            });
            res.on('end', () => resolve(text));
          })
          .on('error', reject);
      });
      const probe = JSON.parse(body) as Record<string, unknown>;
      expect(probe.modelType).toBe('qwen3');
      expect(probe.uid).toBe(1000);
      expect(probe.secret).toBe('ENOENT');
      expect(probe.modelWrite).toMatch(/^(EROFS|EACCES)$/);
      expect(probe.rootWrite).toMatch(/^(EROFS|EACCES)$/);
      expect(probe.scratchWrite).toBe('written');
      expect(probe.tcp).toBe('ECONNREFUSED');
      expect(probe.env).not.toContain('OPENAI_API_KEY');
      expect(probe.env).not.toContain('PTB_HOME');
      expect(listener.connections()).toBe(0);
    } finally {
      agent.destroy();
      await listener.close();
    }
    const record = await server.stop();
    expect(record).toMatchObject({ sandbox: 'podman', image, modelUnchanged: true, label: 'podman-probe' });
    expect(record.scratch.sample).toContain('left.txt');
    expect((JSON.parse(readFileSync(ledgerFile, 'utf8').trim()) as ModelSandboxRecord).sandbox).toBe(
      'podman',
    );
    expect(readFileSync(join(dir, 'server.log'), 'utf8')).not.toContain('sk-harness-secret');
  });
});
