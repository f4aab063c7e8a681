import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { imagePins, pinsDigest } from '../../src/sandbox/imagePins.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';

describe('ptb image', () => {
  it('build --dry-run prints the exact podman build command and the pins', async () => {
    const home = tempHome();
    const run = await runCli(['image', 'build', '--dry-run'], { PTB_HOME: home });
    expect(run.code).toBe(0);
    const [command, where] = run.stdout.split('\n');
    const context = join(home, 'images', 'build-context');
    expect(command).toMatch(
      new RegExp(
        `^podman build --file ${context}/Containerfile --tag localhost/ptb-agent:${pinsDigest()} --label ptb\\.source=[0-9a-f]{12} ${context}$`,
      ),
    );
    expect(where).toContain(`run in ${context}`);
    expect(run.stdout).toContain(`pins ${pinsDigest()}`);
    expect(run.stdout).toContain('vllm==0.11.0');
    expect(run.stdout).toContain(`node         ${imagePins().nodeVersion}`);
    for (const cli of imagePins().agentClis) expect(run.stdout).toContain(`${cli.npm}@${cli.version}`);
    expect(run.stdout).toContain('image files agree with the pins');
  });

  it('build --kind apptainer --tag prints the apptainer build, run from the staged context', async () => {
    const home = tempHome();
    const run = await runCli(
      ['image', 'build', '--kind', 'apptainer', '--tag', '/images/agent.sif', '--dry-run'],
      {
        PTB_HOME: home,
      },
    );
    expect(run.code).toBe(0);
    expect(run.stdout.split('\n')[0]).toBe('apptainer build --force /images/agent.sif ptb-agent.def');
    expect(run.stdout).toContain(`run in ${join(home, 'images', 'build-context')}`);
  });

  it('refuses an unknown kind', async () => {
    const run = await runCli(['image', 'build', '--kind', 'docker', '--dry-run']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("unknown image kind 'docker'");
    expect(run.stderr).toContain('use one of: podman, apptainer');
  });

  it('pins --json gives the digest and every pin', async () => {
    const run = await runCli(['image', 'pins', '--json']);
    expect(run.code).toBe(0);
    const pins = JSON.parse(run.stdout);
    expect(pins.digest).toBe(pinsDigest());
    expect(pins.baseImage).toBe('nvidia/cuda:12.9.1-cudnn-devel-ubuntu22.04');
    expect(pins.python).toContainEqual({ name: 'transformers', version: '4.57.3' });
  });

  it('status --json lists every sandbox’s capabilities and both images', async () => {
    const home = tempHome();
    const run = await runCli(['image', 'status', '--json'], { PTB_HOME: home });
    expect(run.code).toBe(0);
    const status = JSON.parse(run.stdout);
    expect(status.drift).toEqual([]);
    expect(status.sandboxes.map((s: { kind: string }) => s.kind)).toEqual([
      'bwrap',
      'podman',
      'apptainer',
      'none',
    ]);
    for (const s of status.sandboxes) {
      expect(typeof s.available).toBe('boolean');
      expect(['bridged', 'none-only', 'host']).toContain(s.networkPolicy);
    }
    expect(status.images).toEqual([
      expect.objectContaining({
        kind: 'podman',
        image: `localhost/ptb-agent:${pinsDigest()}`,
        present: false,
      }),
      expect.objectContaining({
        kind: 'apptainer',
        image: join(home, 'images', `ptb-agent-${pinsDigest()}.sif`),
        present: false,
      }),
    ]);
  });
});
