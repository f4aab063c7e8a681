import type { Command } from 'commander';
import { UserError } from '../core/errors.ts';
import { SANDBOX_KINDS } from '../core/vocabulary.ts';
import type { ImageKind } from '../sandbox/imageBuild.ts';
import type { CliContext } from './context.ts';

type PinsModule = typeof import('../sandbox/imagePins.ts');

/** A command line a shell reads back as the same argv. */
function shellQuote(argv: readonly string[]): string {
  return argv
    .map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`))
    .join(' ');
}

function pinsText({ imagePins, pinsDigest }: PinsModule): string {
  const pins = imagePins();
  return [
    `pins ${pinsDigest(pins)} (src/sandbox/imagePins.ts):`,
    `  base image   ${pins.baseImage}`,
    `  node         ${pins.nodeVersion}`,
    `  uv           ${pins.uvVersion} (torch backend ${pins.torchBackend})`,
    `  python       ${pins.python.map((p) => `${p.name}==${p.version}`).join(' ')}`,
    `  flash-attn   ${pins.flashAttnVersion}`,
    `  agent CLIs   ${pins.agentClis.map((c) => `${c.npm}@${c.version}`).join(' ')}`,
  ].join('\n');
}

function parseKind(value: string, IMAGE_KINDS: readonly ImageKind[]): ImageKind {
  if (!(IMAGE_KINDS as readonly string[]).includes(value)) {
    throw new UserError(`unknown image kind '${value}'`, `use one of: ${IMAGE_KINDS.join(', ')}`);
  }
  return value as ImageKind;
}

export function registerImage(program: Command, ctx: CliContext): void {
  const image = program
    .command('image')
    .description('the agent environment image of the podman and apptainer sandboxes (build, status, pins)');

  image
    .command('build')
    .description(
      'build the agent image (CUDA, pinned Python and agent CLIs, ptb itself) with podman or apptainer',
    )
    .option('--kind <kind>', `podman or apptainer`, 'podman')
    .option(
      '--tag <image>',
      'image name (podman) or .sif path (apptainer); default: named by the pins digest',
    )
    .option('--dry-run', 'print the build command and the pins; build nothing')
    .action(async (flags: { kind: string; tag?: string; dryRun?: boolean }) => {
      const [{ assertImageFilesPinned, buildImage, IMAGE_KINDS, planImageBuild }, pinsModule] =
        await Promise.all([import('../sandbox/imageBuild.ts'), import('../sandbox/imagePins.ts')]);
      const { checkImageFiles } = pinsModule;
      const kind = parseKind(flags.kind, IMAGE_KINDS);
      const plan = planImageBuild(kind, { ...(flags.tag ? { tag: flags.tag } : {}), home: ctx.home });
      if (flags.dryRun) {
        const drift = checkImageFiles();
        ctx.stdout.write(`${shellQuote(plan.argv)}\n`);
        ctx.stdout.write(
          `  (run in ${plan.cwd}, staged from images/ and ptb's sources ${plan.sourceDigest})\n`,
        );
        ctx.stdout.write(`${pinsText(pinsModule)}\n`);
        ctx.stdout.write(
          drift.length === 0
            ? 'image files agree with the pins\n'
            : `image files disagree with the pins: ${drift.map((d) => `${d.file}: ${d.problem}`).join('; ')} (ptb image pins --write)\n`,
        );
        return;
      }
      assertImageFilesPinned();
      ctx.stderr.write(`ptb: building ${plan.image}\n  ${shellQuote(plan.argv)}\n`);
      const code = await buildImage(plan, (chunk) => ctx.stderr.write(chunk));
      if (code !== 0) {
        throw new UserError(
          `${plan.argv[0]} build failed (exit ${code}).`,
          'read the build output above; the build needs the network (base image, PyPI, npm)',
        );
      }
      ctx.stdout.write(`${plan.image}\n`);
    });

  image
    .command('status')
    .description('what each sandbox can give here, and whether the agent images are built')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const [{ IMAGE_KINDS, imageStatus }, { checkImageFiles, pinsDigest }, { SANDBOXES }] =
        await Promise.all([
          import('../sandbox/imageBuild.ts'),
          import('../sandbox/imagePins.ts'),
          import('../sandbox/registry.ts'),
        ]);
      const sandboxes = SANDBOX_KINDS.map((kind) => ({ kind, ...SANDBOXES[kind].capabilities() }));
      const images = IMAGE_KINDS.map((kind) => imageStatus(kind, { home: ctx.home }));
      const drift = checkImageFiles();
      if (flags.json) {
        ctx.stdout.write(`${JSON.stringify({ pins: pinsDigest(), drift, sandboxes, images })}\n`);
        return;
      }
      ctx.stdout.write('sandbox    available  gpus  network    programs  notes\n');
      for (const s of sandboxes) {
        ctx.stdout.write(
          `${s.kind.padEnd(10)} ${(s.available ? 'yes' : 'no').padEnd(10)} ${(s.gpus ? 'yes' : 'no').padEnd(5)} ${s.networkPolicy.padEnd(10)} ${s.environment.padEnd(9)} ${s.reason}\n`,
        );
      }
      ctx.stdout.write('\n');
      for (const i of images) {
        const state = !i.present
          ? `not built (ptb image build${i.kind === 'apptainer' ? ' --kind apptainer' : ''})`
          : i.imageSource !== null && i.imageSource !== i.currentSource
            ? `built, but with older ptb sources (${i.imageSource}, now ${i.currentSource}): rebuild`
            : 'built';
        ctx.stdout.write(`${i.kind.padEnd(10)} ${i.image}  ${state}\n`);
      }
      if (drift.length > 0) {
        ctx.stdout.write(
          `\nimage files disagree with the pins: ${drift.map((d) => `${d.file}: ${d.problem}`).join('; ')} (ptb image pins --write)\n`,
        );
      }
    });

  image
    .command('pins')
    .description('print the image pins; --write regenerates the pinned parts of images/ from them')
    .option('--write', 'rewrite images/Containerfile, images/ptb-agent.def and images/requirements-agent.txt')
    .option('--json', 'print JSON')
    .action(async (flags: { write?: boolean; json?: boolean }) => {
      const pinsModule = await import('../sandbox/imagePins.ts');
      const { imagePins, pinsDigest, writeImagePins } = pinsModule;
      if (flags.write) {
        const changed = writeImagePins();
        ctx.stderr.write(
          changed.length > 0 ? `ptb: rewrote ${changed.join(', ')}\n` : 'ptb: image files already agree\n',
        );
      }
      if (flags.json) ctx.stdout.write(`${JSON.stringify({ digest: pinsDigest(), ...imagePins() })}\n`);
      else ctx.stdout.write(`${pinsText(pinsModule)}\n`);
    });
}
