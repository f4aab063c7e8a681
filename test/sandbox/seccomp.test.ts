import { describe, expect, it } from 'vitest';
import { buildSeccompFilter, INSPECTION_SYSCALLS, type SeccompArch } from '../../src/sandbox/seccomp.ts';

const ALLOW = 0x7fff0000;
const ERRNO_EPERM = 0x00050001;
const KILL_PROCESS = 0x80000000;
const ARCH = { x64: 0xc000003e, arm64: 0xc00000b7, i386: 0x40000003 };

/** A tiny classic-BPF interpreter for the instructions the filter uses (ld abs, jeq, jge, ret). */
function evaluate(filter: Buffer, arch: number, nr: number): number {
  const data = { 0: nr, 4: arch } as Record<number, number>;
  let accumulator = 0;
  for (let pc = 0; pc * 8 < filter.length; pc++) {
    const code = filter.readUInt16LE(pc * 8);
    const jt = filter.readUInt8(pc * 8 + 2);
    const jf = filter.readUInt8(pc * 8 + 3);
    const k = filter.readUInt32LE(pc * 8 + 4);
    if (code === 0x20) accumulator = data[k]!;
    else if (code === 0x15) pc += accumulator === k ? jt : jf;
    else if (code === 0x35) pc += accumulator >= k ? jt : jf;
    else if (code === 0x06) return k;
    else throw new Error(`unexpected opcode ${code}`);
  }
  throw new Error('filter fell off the end');
}

describe('seccomp filter', () => {
  const cases: Array<[SeccompArch, Record<string, number>, number]> = [
    ['x64', { ptrace: 101, process_vm_readv: 310, process_vm_writev: 311, keyctl: 250 }, 0 /* read */],
    ['arm64', { ptrace: 117, process_vm_readv: 270, process_vm_writev: 271, keyctl: 219 }, 63 /* read */],
  ];
  for (const [arch, denied, allowedNr] of cases) {
    it(`refuses the inspection syscalls with EPERM and allows the rest (${arch})`, () => {
      const filter = buildSeccompFilter(INSPECTION_SYSCALLS, arch);
      expect(filter.length % 8).toBe(0);
      for (const nr of Object.values(denied)) expect(evaluate(filter, ARCH[arch], nr)).toBe(ERRNO_EPERM);
      expect(evaluate(filter, ARCH[arch], allowedNr)).toBe(ALLOW);
      expect(evaluate(filter, ARCH.i386, 26)).toBe(KILL_PROCESS);
    });
  }

  it('kills x32 syscalls on x86-64 and denies only what was listed', () => {
    const filter = buildSeccompFilter(['ptrace'], 'x64');
    expect(evaluate(filter, ARCH.x64, 0x40000000 + 101)).toBe(KILL_PROCESS);
    expect(evaluate(filter, ARCH.x64, 101)).toBe(ERRNO_EPERM);
    expect(evaluate(filter, ARCH.x64, 310)).toBe(ALLOW);
  });
});
