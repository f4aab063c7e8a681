import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createRedactor, knownSecretsFromEnv, redactFile } from '../../src/ledgers/redact.ts';

// Synthetic keys in each provider's shape (never real ones).
const ANTHROPIC = `sk-ant-api03-${'Ab1_'.repeat(20)}xyzAA`;
const OPENAI_PROJECT = `sk-proj-${'Qw3-'.repeat(25)}end`;
const OPENAI_LEGACY = `sk-${'a1B2c3D4e5'.repeat(5)}`;
const OPENROUTER = `sk-or-v1-${'0f'.repeat(32)}`;
const GOOGLE = `AIzaSy${'Z9_x-'.repeat(6)}abc`; // 39 characters, like real ones
const HF = `hf_${'AbCdEfGhIj'.repeat(3)}klmn`;
const GITHUB = `ghp_${'A1b2C3d4E5'.repeat(4)}`;
const SLACK = `xoxb-${'123456789012'}-abcdefABCDEF`;

async function streamThrough(redactor: ReturnType<typeof createRedactor>, chunks: Buffer[]): Promise<string> {
  const transform = redactor.stream();
  const out: Buffer[] = [];
  transform.on('data', (chunk: Buffer | string) => out.push(Buffer.from(chunk)));
  await new Promise<void>((resolve, reject) => {
    Readable.from(chunks).pipe(transform).on('end', resolve).on('error', reject);
  });
  return Buffer.concat(out).toString('utf8');
}

describe('createRedactor', () => {
  it('redacts every common key shape with its name', () => {
    const redact = createRedactor([]);
    const text = [ANTHROPIC, OPENAI_PROJECT, OPENAI_LEGACY, OPENROUTER, GOOGLE, HF, GITHUB, SLACK]
      .map((key, index) => `line ${index}: key=${key} done`)
      .join('\n');
    expect(redact(text)).toBe(
      [
        'anthropic-key',
        'openai-project-key',
        'openai-key',
        'openrouter-key',
        'google-api-key',
        'hf-token',
        'github-token',
        'slack-token',
      ]
        .map((name, index) => `line ${index}: key=[REDACTED:${name}] done`)
        .join('\n'),
    );
    expect(redact.count(text)).toBe(8);
  });

  it('leaves ordinary text alone', () => {
    const redact = createRedactor([]);
    const text =
      'pip install sk-learn-compatible-estimator-package; disk-usage-summary-for-workspace; hf_hub_download; AIza; task-sk-1234';
    expect(redact(text)).toBe(text);
  });

  it('redacts known values, also truncated to 10 or more leading characters, but not shorter ones', () => {
    const secret = 'relay-token-7f3a9c2e51b84d06';
    const redact = createRedactor([{ name: 'RELAY_TOKEN', value: secret }, 'short1234', 'tiny']);
    expect(redact(`Authorization: Bearer ${secret}`)).toBe('Authorization: Bearer [REDACTED:RELAY_TOKEN]');
    expect(redact(`echo ${secret.slice(0, 14)}...`)).toBe('echo [REDACTED:RELAY_TOKEN]...');
    expect(redact(`prefix ${secret.slice(0, 9)} only`)).toBe(`prefix ${secret.slice(0, 9)} only`);
    expect(redact('pw=short1234!')).toBe('pw=[REDACTED:secret]!');
    expect(redact('a tiny word')).toBe('a tiny word'); // too short to redact safely
  });

  it('merges overlapping matches so no fragment leaks', () => {
    const redact = createRedactor([{ name: 'ANTHROPIC_API_KEY', value: ANTHROPIC }]);
    expect(redact(`x${ANTHROPIC}y`)).toBe('x[REDACTED:ANTHROPIC_API_KEY]y');
    expect(redact(`${ANTHROPIC} ${ANTHROPIC.slice(0, 20)}`)).toBe(
      '[REDACTED:ANTHROPIC_API_KEY] [REDACTED:ANTHROPIC_API_KEY]',
    );
    // Glued together, the key shape runs across both: one span, nothing of either left.
    expect(redact(`${ANTHROPIC}${ANTHROPIC}`)).toBe('[REDACTED:ANTHROPIC_API_KEY]');
  });

  it('takes known secrets from credential variables of an environment', () => {
    expect(
      knownSecretsFromEnv({
        ANTHROPIC_API_KEY: ANTHROPIC,
        HF_TOKEN: HF,
        GITHUB_TOKEN: GITHUB,
        PATH: '/usr/bin:/bin:/usr/local/bin',
        EMPTY_API_KEY: '',
      }).map((secret) => secret.name),
    ).toEqual(['ANTHROPIC_API_KEY', 'HF_TOKEN', 'GITHUB_TOKEN']);
  });
});

describe('streaming redaction', () => {
  it('finds keys split across every possible chunk boundary', async () => {
    const secret = 'harness-relay-token-0123456789abcdef';
    const redact = createRedactor([{ name: 'RELAY', value: secret }]);
    const text = `start ${secret} mid ${OPENAI_PROJECT}\nnext line ${HF} é end\n`;
    const bytes = Buffer.from(text, 'utf8');
    for (let split = 1; split < bytes.length; split += 3) {
      const out = await streamThrough(redact, [bytes.subarray(0, split), bytes.subarray(split)]);
      expect(out, `split at ${split}`).toBe(redact(text));
    }
    const byteByByte = await streamThrough(
      redact,
      [...bytes].map((byte) => Buffer.from([byte])),
    );
    expect(byteByByte).toBe(
      'start [REDACTED:RELAY] mid [REDACTED:openai-project-key]\nnext line [REDACTED:hf-token] é end\n',
    );
  });

  it('handles a very long line without holding it all', async () => {
    const redact = createRedactor([]);
    const filler = 'word '.repeat(30_000);
    const text = `${filler}${HF} ${filler}`;
    const out = await streamThrough(redact, [
      Buffer.from(text.slice(0, 100_000)),
      Buffer.from(text.slice(100_000)),
    ]);
    expect(out).toBe(redact(text));
    expect(out).toContain('[REDACTED:hf-token]');
  });

  it('redacts a file in place and keeps its mode; untouched files stay as they are', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-redact-'));
    try {
      const log = join(dir, 'solve_out.txt');
      writeFileSync(
        log,
        `[2026-01-01T00:00:00Z] OPENAI_API_KEY=${OPENAI_LEGACY}\n[2026-01-01T00:00:01Z] ok\n`,
      );
      chmodSync(log, 0o640);
      const redact = createRedactor([]);
      expect(await redactFile(log, redact)).toBe(1);
      expect(readFileSync(log, 'utf8')).toBe(
        '[2026-01-01T00:00:00Z] OPENAI_API_KEY=[REDACTED:openai-key]\n[2026-01-01T00:00:01Z] ok\n',
      );
      expect(statSync(log).mode & 0o777).toBe(0o640);
      const clean = join(dir, 'clean.txt');
      writeFileSync(clean, 'nothing secret\n');
      const before = statSync(clean).ino;
      expect(await redactFile(clean, redact)).toBe(0);
      expect(statSync(clean).ino).toBe(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
