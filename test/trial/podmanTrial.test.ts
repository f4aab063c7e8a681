import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { FILE_OPENS_LEDGER, FileOpenRecordSchema } from '../../src/ledgers/fileOpens.ts';
import { podmanCapabilities } from '../../src/sandbox/podman.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';
import { testPython } from '../helpers/tinyModel.ts';
import { ensureRootfsImage } from '../sandbox/podmanImage.ts';

/**
 * A trial whose agent runs in a podman container: the image's own programs (its own node runs the
 * network bridge), uid 1000, no host ptb or Python inside, the workspace bound in. The image is the
 * project's recipe (test/fixtures/podman-rootfs/recipe.json), built here with debootstrap when podman
 * does not hold that exact recipe's image yet (a few minutes, once per machine and recipe).
 */
describe('a trial in the podman sandbox', () => {
  it('runs the agent in the image, as uid 1000, without the host ptb or Python', async () => {
    const caps = podmanCapabilities();
    expect(caps.available, `podman is needed (scripts/setup.sh installs it): ${caps.reason}`).toBe(true);
    const image = ensureRootfsImage();
    const home = tempHome();
    const env = { PTB_HOME: home, PTB_PYTHON: await testPython(), PTB_OFFLINE: '1' };
    // The first thing the agent does is a file write and a read: the file-open ledger must hold both
    // (strace starts the container through podman's OCI runtime, before its first instruction).
    const script =
      'echo first > first.txt; cat first.txt > /dev/null; echo inside-container uid=$(id -u); echo written > note.txt; echo image-node=$(command -v node); ' +
      'if [ -e /opt/ptb/package.json ]; then echo HOST-PTB-VISIBLE; else echo no-host-ptb; fi; ' +
      'if [ -e /root/.pyenv ] || [ -e /work/main ]; then echo HOST-FILES-VISIBLE; else echo no-host-files; fi';
    const run = await runCli(
      [
        'trial',
        'run',
        '-a',
        'command',
        '--agent-command',
        `bash -c "${script}"`,
        '-m',
        'acme/tiny',
        '-b',
        'gsm8k',
        '--hours',
        '0.05',
        '--gpus',
        '0',
        '--sandbox',
        'podman',
        '--image',
        image,
        '--network',
        'none',
        '--json',
      ],
      env,
    );
    expect(run.code, run.stderr).toBe(0);
    const trial = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as {
      status: string;
      agent_outcome: string;
      dir: string;
    };
    expect(trial.status).toBe('completed');
    expect(trial.agent_outcome).toBe('finished');
    const layout = trialLayout(trial.dir);
    const out = readFileSync(layout.solveOut, 'utf8');
    expect(out).toContain('inside-container uid=1000');
    expect(out).toContain('image-node=/usr/bin/node');
    expect(out).toContain('no-host-ptb');
    expect(out).toContain('no-host-files');
    expect(readFileSync(join(layout.taskSnapshot, 'note.txt'), 'utf8')).toBe('written\n');
    expect(JSON.parse(readFileSync(layout.ledgers.sandbox, 'utf8')).kind).toBe('podman');

    const opens = readFileSync(join(layout.ledgers.dir, FILE_OPENS_LEDGER), 'utf8')
      .trim()
      .split('\n')
      .map((line) => FileOpenRecordSchema.parse(JSON.parse(line)));
    const starts = opens.filter((r) => r.t === 'start');
    expect(starts.at(-1), JSON.stringify(starts)).toMatchObject({ mechanism: 'strace' });
    const firstTxt = opens.filter((r) => r.t === 'open' && r.path.endsWith('/first.txt'));
    expect(firstTxt.map((r) => r.t === 'open' && r.mode).sort()).toEqual(['r', 'w']);
    // The container path maps to the trial's workspace on the host.
    expect(firstTxt.every((r) => r.t === 'open' && r.host?.endsWith('first.txt'))).toBe(true);
    const cat = opens.find((r) => r.t === 'exec' && r.argv.join(' ') === 'cat first.txt');
    expect(cat).toBeDefined();
    expect(opens.some((r) => r.t === 'end')).toBe(true);
  }, 600_000);
});
