import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createContext } from '../../src/cli/context.ts';
import { main } from '../../src/cli/main.ts';

class Capture extends Writable {
  text = '';
  isTTY = false;
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `ptb …` in-process against its own PTB_HOME, capturing output. */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  const home = env.PTB_HOME ?? mkdtempSync(join(tmpdir(), 'ptb-cli-'));
  const ctx = createContext({ ...process.env, PTB_HOME: home, ...env });
  const stdout = new Capture();
  const stderr = new Capture();
  ctx.stdout = stdout;
  ctx.stderr = stderr;
  const code = await main(['node', 'ptb', ...args], ctx);
  return { code, stdout: stdout.text, stderr: stderr.text };
}

export function tempHome(): string {
  return mkdtempSync(join(tmpdir(), 'ptb-home-'));
}
