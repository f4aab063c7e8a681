/**
 * A small classic-BPF seccomp filter for bwrap's `--seccomp FD`: the listed syscalls fail with EPERM,
 * everything else is allowed. A syscall through a foreign ABI (i386 or x32 on x86-64, arm32 on arm64)
 * kills the process, so a 32-bit entry point cannot be used to get around the list.
 */

/** Syscalls a sandbox can refuse. Numbers per architecture from the kernel's syscall tables. */
const SYSCALL_NUMBERS = {
  ptrace: { x64: 101, arm64: 117 },
  process_vm_readv: { x64: 310, arm64: 270 },
  process_vm_writev: { x64: 311, arm64: 271 },
  perf_event_open: { x64: 298, arm64: 241 },
  kcmp: { x64: 312, arm64: 272 },
  bpf: { x64: 321, arm64: 280 },
  userfaultfd: { x64: 323, arm64: 282 },
  add_key: { x64: 248, arm64: 217 },
  request_key: { x64: 249, arm64: 218 },
  keyctl: { x64: 250, arm64: 219 },
} as const;

export type DeniableSyscall = keyof typeof SYSCALL_NUMBERS;

/** Syscalls that let one process read or steer another's memory, plus kernel keyrings. */
export const INSPECTION_SYSCALLS: readonly DeniableSyscall[] = Object.keys(
  SYSCALL_NUMBERS,
) as DeniableSyscall[];

const AUDIT_ARCH = { x64: 0xc000003e, arm64: 0xc00000b7 } as const;
const X32_SYSCALL_BIT = 0x40000000;

// classic BPF opcodes
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const RET_K = 0x06;
const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_ERRNO = 0x00050000;
const SECCOMP_RET_KILL_PROCESS = 0x80000000;
const EPERM = 1;
// offsets in struct seccomp_data
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;

interface Instruction {
  code: number;
  k: number;
  /** Jump to the deny return when true (conditional jumps only). */
  denyIfTrue?: boolean;
  /** Jump to the kill return when true. */
  killIfTrue?: boolean;
  /** Jump to the kill return when false. */
  killIfFalse?: boolean;
}

export type SeccompArch = keyof typeof AUDIT_ARCH;

export function currentSeccompArch(): SeccompArch | null {
  if (process.arch === 'x64') return 'x64';
  if (process.arch === 'arm64') return 'arm64';
  return null;
}

/** The filter as bwrap expects it: an array of `struct sock_filter` (8 bytes each, host byte order). */
export function buildSeccompFilter(deny: readonly DeniableSyscall[], arch: SeccompArch): Buffer {
  const program: Instruction[] = [
    { code: LD_W_ABS, k: OFFSET_ARCH },
    { code: JEQ_K, k: AUDIT_ARCH[arch], killIfFalse: true },
    { code: LD_W_ABS, k: OFFSET_NR },
  ];
  if (arch === 'x64') program.push({ code: JGE_K, k: X32_SYSCALL_BIT, killIfTrue: true });
  for (const name of new Set(deny))
    program.push({ code: JEQ_K, k: SYSCALL_NUMBERS[name][arch], denyIfTrue: true });
  program.push({ code: RET_K, k: SECCOMP_RET_ALLOW });
  const denyIndex = program.length;
  program.push({ code: RET_K, k: SECCOMP_RET_ERRNO | EPERM });
  const killIndex = program.length;
  program.push({ code: RET_K, k: SECCOMP_RET_KILL_PROCESS });

  const buffer = Buffer.alloc(program.length * 8);
  program.forEach((instruction, index) => {
    // jump offsets count from the next instruction
    const toDeny = denyIndex - index - 1;
    const toKill = killIndex - index - 1;
    const jt = instruction.denyIfTrue ? toDeny : instruction.killIfTrue ? toKill : 0;
    const jf = instruction.killIfFalse ? toKill : 0;
    if (jt > 255 || jf > 255) throw new Error('seccomp filter too long for short jumps');
    const offset = index * 8;
    buffer.writeUInt16LE(instruction.code, offset);
    buffer.writeUInt8(jt, offset + 2);
    buffer.writeUInt8(jf, offset + 3);
    buffer.writeUInt32LE(instruction.k >>> 0, offset + 4);
  });
  return buffer;
}
