/**
 * Images for the real podman tests, cached in podman's store under fixed names.
 *
 * - `localhost/ptb-test-rootfs:bookworm`: a Debian rootfs, used when present. Made once (≈ 2–3 min,
 *   so never by a test) with
 *     debootstrap --variant=minbase --include=nodejs bookworm /tmp/rootfs
 *     tar -C /tmp/rootfs -c . | podman import - localhost/ptb-test-rootfs:bookworm
 * - `localhost/ptb-test-skeleton:1`: otherwise (or with PTB_TEST_PODMAN_SKELETON=1). An empty root (directories, and the host's merged-/usr
 *   symlinks) imported in about a second; the host's /usr and /etc are bound read-only into it, so
 *   the shell and node inside are the host's. Everything else about the run is podman's.
 */
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ContainerMount } from '../../src/sandbox/container.ts';
import { podmanCapabilities } from '../../src/sandbox/podman.ts';

export const ROOTFS_IMAGE = 'localhost/ptb-test-rootfs:bookworm';
export const SKELETON_IMAGE = 'localhost/ptb-test-skeleton:1';

export type PodmanTestImage =
  | { ok: true; image: string; kind: 'debootstrap' | 'skeleton'; mounts: ContainerMount[] }
  | { ok: false; reason: string };

function imageExists(image: string): boolean {
  return spawnSync('podman', ['image', 'exists', image]).status === 0;
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
  if (process.env.PTB_TEST_PODMAN_SKELETON !== '1' && imageExists(ROOTFS_IMAGE))
    return { ok: true, image: ROOTFS_IMAGE, kind: 'debootstrap', mounts: [] };
  if (!imageExists(SKELETON_IMAGE)) {
    const failed = buildSkeleton();
    if (failed) return { ok: false, reason: failed };
  }
  return { ok: true, image: SKELETON_IMAGE, kind: 'skeleton', mounts: hostSystemMounts() };
}
