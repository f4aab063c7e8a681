/**
 * Images for the real podman tests, cached in podman's store.
 *
 * - `localhost/ptb-test-rootfs:<recipe digest>`: a Debian rootfs made from the project's own recipe,
 *   test/fixtures/podman-rootfs/recipe.json (debootstrap, then `podman import`; ≈ 1–3 min once per
 *   machine and recipe). The tag is the recipe's sha256, so an image built by hand, or from an older
 *   recipe, is never taken for it: what the tests run is what the repository describes.
 *   `ensureRootfsImage()` builds it (the podman trial test); `podmanTestImage()` uses it when present.
 * - `localhost/ptb-test-skeleton:1`: otherwise (or with PTB_TEST_PODMAN_SKELETON=1). An empty root (directories, and the host's merged-/usr
 *   symlinks) imported in about a second; the host's /usr and /etc are bound read-only into it, so
 *   the shell and node inside are the host's. Everything else about the run is podman's.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import type { ContainerMount } from '../../src/sandbox/container.ts';
import { podmanCapabilities } from '../../src/sandbox/podman.ts';

const RECIPE_PATH = join(import.meta.dirname, '..', 'fixtures', 'podman-rootfs', 'recipe.json');
const ROOTFS_REPOSITORY = 'localhost/ptb-test-rootfs';

const RootfsRecipe = z.object({
  suite: z.string().min(1),
  variant: z.string().min(1),
  include: z.array(z.string().min(1)),
  mirror: z.string().url(),
  /** A command run in the finished root (chroot) that must succeed before the image is imported. */
  check: z.array(z.string().min(1)).min(1),
});
export type RootfsRecipe = z.infer<typeof RootfsRecipe>;

export function rootfsRecipe(): RootfsRecipe {
  return RootfsRecipe.parse(JSON.parse(readFileSync(RECIPE_PATH, 'utf8')));
}

/** The image name for the recipe as it is in the repository now: its tag is the file's sha256. */
export function rootfsImage(): string {
  const digest = createHash('sha256').update(readFileSync(RECIPE_PATH)).digest('hex').slice(0, 16);
  return `${ROOTFS_REPOSITORY}:${digest}`;
}

export const SKELETON_IMAGE = 'localhost/ptb-test-skeleton:1';

export type PodmanTestImage =
  | { ok: true; image: string; kind: 'debootstrap' | 'skeleton'; mounts: ContainerMount[] }
  | { ok: false; reason: string };

function imageExists(image: string): boolean {
  return spawnSync('podman', ['image', 'exists', image]).status === 0;
}

function run(argv: string[], what: string): string {
  const done = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (done.status !== 0)
    throw new Error(
      `${what} failed (exit ${done.status}): ${(done.stderr || done.stdout || '').slice(-2000)}`,
    );
  return done.stdout;
}

/**
 * The recipe's Debian image, built when podman does not hold it yet (debootstrap needs root and
 * Debian's archive; scripts/setup.sh installs debootstrap). Returns the image name.
 * PTB_TEST_DEBIAN_MIRROR overrides the recipe's mirror (same packages, another host).
 */
export function ensureRootfsImage(): string {
  const image = rootfsImage();
  if (imageExists(image)) return image;
  const recipe = rootfsRecipe();
  const root = mkdtempSync(join(tmpdir(), 'ptb-test-rootfs-'));
  try {
    const include = recipe.include.length > 0 ? [`--include=${recipe.include.join(',')}`] : [];
    const mirror = process.env.PTB_TEST_DEBIAN_MIRROR || recipe.mirror;
    run(
      ['debootstrap', `--variant=${recipe.variant}`, ...include, recipe.suite, root, mirror],
      'debootstrap',
    );
    run(['chroot', root, ...recipe.check], `the recipe's check (${recipe.check.join(' ')})`);
    run(['sh', '-c', `tar -C '${root}' -c . | podman import - '${image}'`], 'podman import');
    return image;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function hostSystemMounts(): ContainerMount[] {
  const mounts: ContainerMount[] = [
    { source: '/usr', target: '/usr', readOnly: true },
    { source: '/etc', target: '/etc', readOnly: true },
  ];
  for (const dir of ['/bin', '/sbin', '/lib', '/lib64']) {
    try {
      if (lstatSync(dir).isDirectory()) mounts.push({ source: dir, target: dir, readOnly: true });
    } catch {
      // absent on this host
    }
  }
  return mounts;
}

function buildSkeleton(): string | null {
  const root = mkdtempSync(join(tmpdir(), 'ptb-skeleton-'));
  try {
    for (const dir of ['usr', 'etc', 'tmp', 'proc', 'sys', 'dev', 'run', 'home', 'work', 'var/tmp']) {
      mkdirSync(join(root, dir), { recursive: true });
    }
    for (const dir of ['bin', 'sbin', 'lib', 'lib64']) {
      try {
        const stat = lstatSync(`/${dir}`);
        if (stat.isSymbolicLink()) symlinkSync(readlinkSync(`/${dir}`), join(root, dir));
        else if (stat.isDirectory()) mkdirSync(join(root, dir));
      } catch {
        // absent on this host
      }
    }
    const tar = join(tmpdir(), `ptb-skeleton-${process.pid}.tar`);
    const packed = spawnSync('tar', ['-C', root, '-cf', tar, '.']);
    if (packed.status !== 0) return `tar failed: ${packed.stderr}`;
    const imported = spawnSync('podman', ['import', tar, SKELETON_IMAGE], { encoding: 'utf8' });
    rmSync(tar, { force: true });
    return imported.status === 0 ? null : `podman import failed: ${imported.stderr.trim()}`;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** An image the real podman tests can run, or why there is none. */
export function podmanTestImage(): PodmanTestImage {
  const caps = podmanCapabilities();
  if (!caps.available) return { ok: false, reason: caps.reason };
  // PTB_TEST_PODMAN_SKELETON=1 exercises the skeleton even where the Debian image is cached.
  const rootfs = rootfsImage();
  if (process.env.PTB_TEST_PODMAN_SKELETON !== '1' && imageExists(rootfs))
    return { ok: true, image: rootfs, kind: 'debootstrap', mounts: [] };
  if (!imageExists(SKELETON_IMAGE)) {
    const failed = buildSkeleton();
    if (failed) return { ok: false, reason: failed };
  }
  return { ok: true, image: SKELETON_IMAGE, kind: 'skeleton', mounts: hostSystemMounts() };
}
