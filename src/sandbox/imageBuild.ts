/**
 * Building and finding the ptb agent image. A build stages a small context directory (the
 * Containerfile or the apptainer definition at its root, requirements-agent.txt, and ptb's own
 * sources under ptb/, without node_modules or caches), refuses image files whose pins drifted from
 * src/sandbox/imagePins.ts, and runs `podman build` or `apptainer build` from there. The default image
 * is named by the pins' digest, so a change of pins is a new image and an old one is never mistaken
 * for current.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { UserError } from '../core/errors.ts';
import { type HomeLayout, homeLayout, repoRoot } from '../core/paths.ts';
import { checkImageFiles, IMAGE_FILES, IMAGES_DIR, pinsDigest } from './imagePins.ts';

export type ImageKind = 'podman' | 'apptainer';
export const IMAGE_KINDS: readonly ImageKind[] = ['podman', 'apptainer'];

/** `localhost/ptb-agent:<pins digest>` or `<PTB_HOME>/images/ptb-agent-<pins digest>.sif`. */
export function defaultImage(kind: ImageKind, home: Pick<HomeLayout, 'root'> = homeLayout()): string {
  const digest = pinsDigest();
  return kind === 'podman'
    ? `localhost/ptb-agent:${digest}`
    : join(home.root, 'images', `ptb-agent-${digest}.sif`);
}

/** Where builds stage their context (wiped at each build). */
export function buildContextDir(home: Pick<HomeLayout, 'root'> = homeLayout()): string {
  return join(home.root, 'images', 'build-context');
}

const PTB_TOP_FILES = ['package.json', 'package-lock.json', 'tsconfig.json'];
const PTB_DIRS = ['bin', 'src', 'python'];
const SKIPPED = /(^|\/)(__pycache__|node_modules|\.pytest_cache)(\/|$)|\.pyc$/;

/** ptb's files that go into the image, relative to the repository root, sorted. */
export function ptbSourceFiles(root: string = repoRoot): string[] {
  const files: string[] = PTB_TOP_FILES.filter((name) => existsSync(join(root, name)));
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      const rel = relative(root, path);
      if (SKIPPED.test(rel)) continue;
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) files.push(rel);
    }
  };
  for (const dir of PTB_DIRS) if (existsSync(join(root, dir))) walk(join(root, dir));
  return files.sort();
}

/** Content digest of ptb's files in the image (a label: which ptb the image carries). */
export function sourceDigest(
  root: string = repoRoot,
  files: readonly string[] = ptbSourceFiles(root),
): string {
  const hash = createHash('sha256');
  for (const file of files) {
    hash.update(`${file}\0`);
    hash.update(readFileSync(join(root, file)));
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 12);
}

/** Copy the build context into `dir` (emptied first). */
export function stageBuildContext(kind: ImageKind, dir: string, root: string = repoRoot): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const recipe = kind === 'podman' ? IMAGE_FILES.containerfile : IMAGE_FILES.apptainerDef;
  copyFileSync(join(IMAGES_DIR, recipe), join(dir, recipe));
  copyFileSync(join(IMAGES_DIR, IMAGE_FILES.requirements), join(dir, IMAGE_FILES.requirements));
  for (const file of ptbSourceFiles(root)) {
    const target = join(dir, 'ptb', file);
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(join(root, file), target);
  }
}

export interface ImageBuildPlan {
  kind: ImageKind;
  image: string;
  contextDir: string;
  /** The command and its arguments. */
  argv: string[];
  /** Directory the command runs in. */
  cwd: string;
  pinsDigest: string;
  sourceDigest: string;
}

/** The exact build command for a kind (nothing is run or written). */
export function planImageBuild(
  kind: ImageKind,
  options: { tag?: string; home?: Pick<HomeLayout, 'root'> } = {},
): ImageBuildPlan {
  const home = options.home ?? homeLayout();
  const image = options.tag ?? defaultImage(kind, home);
  const contextDir = buildContextDir(home);
  const digest = pinsDigest();
  const source = sourceDigest();
  const argv =
    kind === 'podman'
      ? [
          'podman',
          'build',
          '--file',
          join(contextDir, IMAGE_FILES.containerfile),
          '--tag',
          image,
          '--label',
          `ptb.source=${source}`,
          contextDir,
        ]
      : // %files paths are relative: the build runs in the context, with the definition at its root.
        ['apptainer', 'build', '--force', image, IMAGE_FILES.apptainerDef];
  return { kind, image, contextDir, argv, cwd: contextDir, pinsDigest: digest, sourceDigest: source };
}

/** Refuse image files that drifted from the pins. */
export function assertImageFilesPinned(): void {
  const drift = checkImageFiles();
  if (drift.length > 0) {
    throw new UserError(
      `The image files disagree with src/sandbox/imagePins.ts: ${drift.map((d) => `${d.file}: ${d.problem}`).join('; ')}.`,
      'run `ptb image pins --write` to regenerate them from the pins',
    );
  }
}

function toolPath(name: string): string | null {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() || null : null;
}

/** Stage the context and run the build, streaming its output; resolves to the build's exit code. */
export async function buildImage(
  plan: ImageBuildPlan,
  onOutput: (chunk: Buffer) => void,
  signal?: AbortSignal,
): Promise<number> {
  assertImageFilesPinned();
  const tool = plan.argv[0]!;
  if (!toolPath(tool)) {
    throw new UserError(
      `${tool} is not installed here, so the ${plan.kind} image cannot be built.`,
      plan.kind === 'podman' ? 'apt-get install podman runc' : 'install apptainer (apptainer.org)',
    );
  }
  stageBuildContext(plan.kind, plan.contextDir);
  if (plan.kind === 'apptainer') mkdirSync(dirname(plan.image), { recursive: true });
  return new Promise((resolve, reject) => {
    const child = spawn(tool, plan.argv.slice(1), { cwd: plan.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', onOutput);
    child.stderr.on('data', onOutput);
    const onAbort = () => child.kill('SIGTERM');
    signal?.addEventListener('abort', onAbort, { once: true });
    child.once('error', reject);
    child.once('close', (code) => {
      signal?.removeEventListener('abort', onAbort);
      resolve(code ?? 1);
    });
  });
}

export interface ImageStatus {
  kind: ImageKind;
  image: string;
  /** The build tool is installed. */
  tool: boolean;
  present: boolean;
  /** ptb.source label of a present podman image (null when unknown). */
  imageSource: string | null;
  /** The current ptb sources' digest: differs from imageSource when the image carries an older ptb. */
  currentSource: string;
}

/** Is the default (or given) image there, and does it carry the current ptb? */
export function imageStatus(
  kind: ImageKind,
  options: { image?: string; home?: Pick<HomeLayout, 'root'> } = {},
): ImageStatus {
  const image = options.image ?? defaultImage(kind, options.home);
  const tool = toolPath(kind) !== null;
  const currentSource = sourceDigest();
  if (kind === 'apptainer') {
    const present = existsSync(image) && statSync(image).isFile();
    return { kind, image, tool, present, imageSource: null, currentSource };
  }
  if (!tool) return { kind, image, tool, present: false, imageSource: null, currentSource };
  const inspected = spawnSync(
    'podman',
    ['image', 'inspect', '--format', '{{index .Labels "ptb.source"}}', image],
    { encoding: 'utf8', timeout: 30_000 },
  );
  const present = inspected.status === 0;
  const label = present ? inspected.stdout.trim() : '';
  return {
    kind,
    image,
    tool,
    present,
    imageSource: label && label !== '<no value>' ? label : null,
    currentSource,
  };
}
