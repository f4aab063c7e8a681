import { describe, expect, it } from 'vitest';
import { StraceParser, unquote } from '../../src/ledgers/straceParser.ts';

/** Lines as `strace --pidns-translation -f -qq -ttt -y -s 4096` writes them (taken from a real bwrap run). */
const LINES = [
  "1285  1796584763.222685 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f9324ef6490) = 2 /* 1286 in strace's PID NS */",
  '1286  1796584763.30 execve("/bin/sh", ["/bin/sh", "-c", "cat /tmp/x | python3 t.py"], 0x55 /* 4 vars */) = 0',
  '1287  1796584763.31 dup2(4<pipe:[143440]>, 1</dev/null> <unfinished ...>',
  '1288  1796584763.31 dup2(3<pipe:[143440]>, 0</dev/null>) = 0<pipe:[143440]>',
  '1287  1796584763.32 <... dup2 resumed>) = 1<pipe:[143440]>',
  '1287  1796584763.33 openat(AT_FDCWD</home/agent/task>, "data.jsonl", O_RDONLY|O_CLOEXEC) = 3</home/agent/task/data.jsonl>',
  '1287  1796584763.34 openat(AT_FDCWD</home/agent/task>, "missing.json", O_RDONLY) = -1 ENOENT (No such file or directory)',
  '1288  1796584763.35 openat(AT_FDCWD</home/agent/task>, "out/model.safetensors", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 4</home/agent/task/out/model.safetensors>',
  '1288  1796584763.36 openat(AT_FDCWD</home/agent/task>, "/home/agent/task/ckpt", O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY) = 5</home/agent/task/ckpt>',
  "1289  1796584763.40 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM, exit_signal=0} => {parent_tid=[6 /* 1290 in strace's PID NS */]}, 88) = 6 /* 1290 in strace's PID NS */",
  '1286  1796584763.41 unlinkat(AT_FDCWD</home/agent/task>, "data.jsonl", 0) = 0 (DELAYED)',
  '1286  1796584763.42 renameat2(AT_FDCWD</tmp>, "a.jsonl", AT_FDCWD</tmp>, "b.jsonl", RENAME_NOREPLACE) = 0 (DELAYED)',
  '12827 1796587605.99 renameat(AT_FDCWD</home/agent/task>, "/home/agent/task/final_model.partial/.tmpeYgSb0", AT_FDCWD</home/agent/task>, "final_model.partial/model.safetensors") = 0 (DELAYED)',
  '1286  1796584763.43 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=4, si_uid=1000} ---',
  '1291  1796584763.44 openat(AT_FDCWD</tmp>, "/tmp/caf\\303\\251 \\"q\\".txt", O_RDWR) = 3</tmp/café "q".txt>',
];

describe('strace parser', () => {
  it('turns opens, execs, spawns, pipes, deletions and renames into events', () => {
    const parser = new StraceParser();
    const events = LINES.map((l) => parser.line(l)).filter(Boolean);
    expect(events).toEqual([
      { kind: 'spawn', pid: 1285, ts: 1796584763.222685, child: 1286, thread: false },
      {
        kind: 'exec',
        pid: 1286,
        ts: 1796584763.3,
        path: '/bin/sh',
        argv: ['/bin/sh', '-c', 'cat /tmp/x | python3 t.py'],
        truncated: false,
      },
      { kind: 'redirect', pid: 1288, ts: 1796584763.31, fd: 0, target: 'pipe:[143440]' },
      { kind: 'redirect', pid: 1287, ts: 1796584763.31, fd: 1, target: 'pipe:[143440]' },
      {
        kind: 'open',
        pid: 1287,
        ts: 1796584763.33,
        path: '/home/agent/task/data.jsonl',
        fd: 3,
        read: true,
        write: false,
      },
      {
        kind: 'open',
        pid: 1288,
        ts: 1796584763.35,
        path: '/home/agent/task/out/model.safetensors',
        fd: 4,
        read: false,
        write: true,
      },
      { kind: 'spawn', pid: 1289, ts: 1796584763.4, child: 1290, thread: true },
      { kind: 'unlink', pid: 1286, ts: 1796584763.41, path: '/home/agent/task/data.jsonl' },
      { kind: 'rename', pid: 1286, ts: 1796584763.42, from: '/tmp/a.jsonl', to: '/tmp/b.jsonl' },
      {
        kind: 'rename',
        pid: 12827,
        ts: 1796587605.99,
        from: '/home/agent/task/final_model.partial/.tmpeYgSb0',
        to: '/home/agent/task/final_model.partial/model.safetensors',
      },
      {
        kind: 'open',
        pid: 1291,
        ts: 1796584763.44,
        path: '/tmp/café "q".txt',
        fd: 3,
        read: true,
        write: true,
      },
    ]);
  });

  it('decodes strace string escapes (octal UTF-8 bytes, quotes, control characters)', () => {
    expect(unquote('caf\\303\\251\\n\\t\\"x\\"\\\\')).toBe('café\n\t"x"\\');
    expect(unquote('\\x41\\102')).toBe('AB');
  });
});
