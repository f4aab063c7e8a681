import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CgroupScope, createCgroupScope, detectCgroupLayout } from '../../src/sandbox/cgroup.ts';
import { isRoot } from './helpers.ts';

const HYBRID_CGROUP = [
  '9:name=systemd:/',
  '8:pids:/',
  '4:memory:/process_api/abc123',
  '1:cpu:/',
  '0::/',
].join('\n');

const HYBRID_MOUNTINFO = [
  '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
  '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
  '39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids',
  '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
].join('\n');

describe('cgroup layout detection', () => {
  it('finds each v1 controller below the process own group, and the v2 mount', () => {
    const layout = detectCgroupLayout(HYBRID_CGROUP, HYBRID_MOUNTINFO);
    expect(layout.v1.memory?.ownDir).toBe('/sys/fs/cgroup/memory/process_api/abc123');
    expect(layout.v1.pids?.ownDir).toBe('/sys/fs/cgroup/pids');
    expect(layout.v1.cpu?.ownDir).toBe('/sys/fs/cgroup/cpu');
    expect(layout.v2OwnDir).toBe('/sys/fs/cgroup/unified');
  });

  it('handles pure v2 with a mount rooted below the hierarchy root (cgroup namespace)', () => {
    const layout = detectCgroupLayout(
      '0::/user.slice/user-1000.slice/session-3.scope',
      '30 23 0:26 /user.slice /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate',
    );
    expect(layout.v1).toEqual({});
    expect(layout.v2OwnDir).toBe('/sys/fs/cgroup/user-1000.slice/session-3.scope');
  });

  it('finds nothing when cgroupfs is not mounted', () => {
    const layout = detectCgroupLayout(HYBRID_CGROUP, '22 1 0:21 / /proc rw - proc proc rw');
    expect(layout.v1).toEqual({});
    expect(layout.v2OwnDir).toBeNull();
  });
});

describe('cgroup fallback', () => {
  it('records warnings and enforces nothing when the groups cannot be created, without throwing', async () => {
    const notCgroupfs = mkdtempSync(join(tmpdir(), 'ptb-cgroup-test-'));
    rmSync(notCgroupfs, { recursive: true });
    const scope = new CgroupScope(
      { memoryBytes: 1 << 30, pids: 10, cpus: 1 },
      {
        v1: { memory: { ownDir: join(notCgroupfs, 'memory') }, pids: { ownDir: join(notCgroupfs, 'pids') } },
        v2OwnDir: null,
        v2Controllers: new Set(),
      },
    );
    expect(scope.enforced).toEqual({ memory: false, pids: false, cpu: false, treeKill: false });
    expect(scope.warnings.join('\n')).toMatch(/memory limit not enforced/);
    expect(scope.warnings.join('\n')).toMatch(/pids limit not enforced/);
    expect(scope.warnings.join('\n')).toMatch(/cpu limit not enforced/);
    expect(scope.procsFiles).toEqual([]);
    await scope.dispose();
  });
});

describe.skipIf(!isRoot)('cgroups on this machine (root)', () => {
  it('creates one group per controller under our own groups, writes the limits and removes them', async () => {
    const scope = createCgroupScope({ memoryBytes: 300 << 20, pids: 42, cpus: 0.5 });
    expect(scope.enforced).toEqual({ memory: true, pids: true, cpu: true, treeKill: true });
    const dirs = scope.procsFiles.map((file) => file.replace(/\/cgroup\.procs$/, ''));
    const own = detectCgroupLayout(
      readFileSync('/proc/self/cgroup', 'utf8'),
      readFileSync('/proc/self/mountinfo', 'utf8'),
    );
    const memoryDir = dirs.find((dir) => dir.startsWith(`${own.v1.memory!.ownDir}/ptb-`));
    const pidsDir = dirs.find((dir) => dir.startsWith(`${own.v1.pids!.ownDir}/ptb-`));
    const cpuDir = dirs.find((dir) => dir.startsWith(`${own.v1.cpu!.ownDir}/ptb-`));
    expect(memoryDir).toBeDefined();
    expect(readFileSync(join(memoryDir!, 'memory.limit_in_bytes'), 'utf8').trim()).toBe(String(300 << 20));
    expect(readFileSync(join(pidsDir!, 'pids.max'), 'utf8').trim()).toBe('42');
    expect(readFileSync(join(cpuDir!, 'cpu.cfs_quota_us'), 'utf8').trim()).toBe('50000');
    await scope.dispose();
    for (const dir of dirs) expect(existsSync(dir)).toBe(false);
  });
});
