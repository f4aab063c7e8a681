import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/core/paths.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

/** Start `ptb view …` as a real process; resolve with its output once it printed `press Ctrl+C`. */
function startView(args: string[], home: string) {
  const child = spawn(process.execPath, [join(repoRoot, 'bin/ptb.js'), 'view', ...args], {
    env: { ...process.env, PTB_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const ready = new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      if (out.includes('press Ctrl+C')) {
        clearInterval(timer);
        resolve(out);
      }
    }, 50);
    child.on('exit', (code) => {
      clearInterval(timer);
      reject(new Error(`ptb view exited with ${code}: ${out}${err}`));
    });
  });
  const exited = new Promise<{ code: number | null; out: string }>((resolve) =>
    child.on('exit', (code) => resolve({ code, out })),
  );
  return { child, ready, exited };
}

describe('ptb view (CLI)', () => {
  it('prints its loopback URL, serves the dashboard, stops cleanly on SIGTERM', async () => {
    const home = tempHome();
    const view = startView(['--port', '0'], home);
    const out = await view.ready;
    const url = /ptb view: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out)?.[1];
    expect(url, out).toBeDefined();
    expect(out).not.toContain('token');
    const res = await fetch(url!);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('No experiments yet');
    view.child.kill('SIGTERM');
    const { code, out: final } = await view.exited;
    expect(code).toBe(0);
    expect(final).toContain('ptb view: stopped');
  });

  it('on 0.0.0.0 prints a token URL once and refuses requests without it', async () => {
    const home = tempHome();
    const view = startView(['--host', '0.0.0.0', '--port', '0'], home);
    const out = await view.ready;
    const local = /\(on this machine: (http:\/\/127\.0\.0\.1:(\d+)\/\?token=([\w-]+))\)/.exec(out);
    expect(local, out).not.toBeNull();
    const [, loginUrl, port, token] = local!;
    expect(out.split(token!).length - 1).toBe(2); // the remote URL and the local one, nothing else
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(401);
    const login = await fetch(loginUrl!, { redirect: 'manual' });
    expect(login.status).toBe(303);
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    expect((await fetch(`http://127.0.0.1:${port}/api/experiments`, { headers: { cookie } })).status).toBe(
      200,
    );
    view.child.kill('SIGINT');
    expect((await view.exited).code).toBe(0);
  });

  it('rejects a bad port with a hint', async () => {
    const r = await runCli(['view', '--port', '70000']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--port 70000 is not a port number');
  });
});
