/**
 * Parses the output of `strace -f -qq -ttt -y -s 4096 -e trace=<FILE_TRACE_SYSCALLS>` into the
 * events the file-open ledger needs: opens (path as resolved by the kernel, read or write), program
 * starts (argv), new processes and threads, standard input/output redirected to pipes, deletions
 * and renames. Lines strace splits (`<unfinished ...>` / `<... resumed>`) are joined per pid.
 */

/** The system calls traced (everything else runs untraced under strace's seccomp filter). */
export const FILE_TRACE_SYSCALLS = [
  'open',
  'openat',
  'openat2',
  'creat',
  'execve',
  'execveat',
  'clone',
  'clone3',
  'fork',
  'vfork',
  'dup2',
  'dup3',
  'unlink',
  'unlinkat',
  'rename',
  'renameat',
  'renameat2',
] as const;

export type StraceEvent =
  | { kind: 'open'; pid: number; ts: number; path: string; write: boolean; read: boolean; fd: number }
  | { kind: 'exec'; pid: number; ts: number; path: string; argv: string[]; truncated: boolean }
  | { kind: 'spawn'; pid: number; ts: number; child: number; thread: boolean }
  | { kind: 'redirect'; pid: number; ts: number; fd: number; target: string }
  | { kind: 'unlink'; pid: number; ts: number; path: string }
  | { kind: 'rename'; pid: number; ts: number; from: string; to: string };

const LINE = /^(\d+)\s+(\d+\.\d+)\s+(.*)$/;

/** Decode a C-style quoted string body as strace prints it (escapes: \n \t \" \\ \NNN \xNN). */
export function unquote(body: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\') {
      const code = c.charCodeAt(0);
      if (code < 0x80) bytes.push(code);
      else bytes.push(...Buffer.from(c, 'utf8'));
      continue;
    }
    const n = body[++i];
    if (n === undefined) break;
    if (n === 'n') bytes.push(10);
    else if (n === 't') bytes.push(9);
    else if (n === 'r') bytes.push(13);
    else if (n === 'v') bytes.push(11);
    else if (n === 'f') bytes.push(12);
    else if (n === 'x') {
      bytes.push(Number.parseInt(body.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (n >= '0' && n <= '7') {
      let j = i;
      while (j < i + 3 && body[j]! >= '0' && body[j]! <= '7') j++;
      bytes.push(Number.parseInt(body.slice(i, j), 8));
      i = j - 1;
    } else bytes.push(n.charCodeAt(0));
  }
  return Buffer.from(bytes).toString('utf8');
}

/** The quoted strings of an argument list, in order (with where each ends). */
function quoted(text: string): Array<{ value: string; end: number }> {
  const out: Array<{ value: string; end: number }> = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '"') continue;
    let j = i + 1;
    while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
    out.push({ value: unquote(text.slice(i + 1, j)), end: j + 1 });
    i = j;
  }
  return out;
}

/**
 * `= 3</home/agent/x>` → { ret: 3, path: '/home/agent/x' }; failures give ret < 0. A pid returned
 * inside the sandbox's pid namespace comes with its host pid (`= 4` followed by a comment
 * `1288 in strace's PID NS`), which is what `ret` then holds.
 */
function result(text: string): { ret: number; path: string | null } | null {
  const m =
    /\)\s+=\s+(-?\d+|\?)(?:<(.*)>)?(?:\s+\/\*\s*(\d+) in strace's PID NS\s*\*\/)?(?:\s+E[A-Z]+.*?)?(?:\s+\((?:DELAYED|INJECTED)\))?$/.exec(
      text,
    );
  if (!m) return null;
  const ret = m[1] === '?' ? -1 : Number(m[1]);
  return { ret: m[3] !== undefined ? Number(m[3]) : ret, path: m[2] ?? null };
}

function accessOf(flags: string): { read: boolean; write: boolean } {
  const write = /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND/.test(flags);
  return { read: !/O_WRONLY/.test(flags), write };
}

/** The path a `dirfd<dir>, "rel"` pair names. */
function resolveAt(args: string, rel: string): string {
  if (rel.startsWith('/')) return rel;
  const dir = /^[^,]*?<([^>]*)>/.exec(args)?.[1];
  return dir ? `${dir.replace(/\/$/, '')}/${rel}` : rel;
}

/** Parse one complete (joined) call. */
function parseCall(pid: number, ts: number, call: string): StraceEvent | null {
  const paren = call.indexOf('(');
  if (paren < 0) return null;
  const name = call.slice(0, paren);
  const args = call.slice(paren + 1);
  const res = result(call);
  if (!res || res.ret < 0) return null;
  switch (name) {
    case 'open':
    case 'openat':
    case 'openat2':
    case 'creat': {
      const strings = quoted(args);
      const path = res.path ?? strings[0]?.value;
      if (!path) return null;
      const flags = name === 'creat' ? 'O_WRONLY|O_CREAT' : args.slice(strings[0]?.end ?? 0);
      if (/O_DIRECTORY|O_PATH/.test(flags)) return null;
      return { kind: 'open', pid, ts, path, fd: res.ret, ...accessOf(flags) };
    }
    case 'execve':
    case 'execveat': {
      const strings = quoted(args);
      const path = strings[0]?.value ?? '';
      const open = args.indexOf('[');
      const close = args.indexOf(']', open);
      const list = open >= 0 ? args.slice(open, close + 1) : '';
      const argv = quoted(list).map((s) => s.value);
      return { kind: 'exec', pid, ts, path, argv, truncated: /\.\.\.\]$/.test(list) };
    }
    case 'clone':
    case 'clone3':
    case 'fork':
    case 'vfork':
      return { kind: 'spawn', pid, ts, child: res.ret, thread: /CLONE_THREAD/.test(args) };
    case 'dup2':
    case 'dup3': {
      const m = /^\s*\d+(?:<([^>]*)>)?,\s*(\d+)/.exec(args);
      if (!m) return null;
      return { kind: 'redirect', pid, ts, fd: Number(m[2]), target: m[1] ?? '' };
    }
    case 'unlink':
    case 'unlinkat': {
      const rel = quoted(args)[0]?.value;
      if (!rel) return null;
      return { kind: 'unlink', pid, ts, path: name === 'unlink' ? rel : resolveAt(args, rel) };
    }
    case 'rename':
    case 'renameat':
    case 'renameat2': {
      const strings = quoted(args);
      if (strings.length < 2) return null;
      if (name === 'rename')
        return { kind: 'rename', pid, ts, from: strings[0]!.value, to: strings[1]!.value };
      const second = args.slice(strings[0]!.end);
      return {
        kind: 'rename',
        pid,
        ts,
        from: resolveAt(args, strings[0]!.value),
        to: resolveAt(second.replace(/^,\s*/, ''), strings[1]!.value),
      };
    }
  }
  return null;
}

/** Incremental parser: feed lines as strace writes them. */
export class StraceParser {
  private readonly unfinished = new Map<string, { ts: number; head: string }>();

  /** Events in one line (none for signals, exits, and the first half of a split call). */
  line(text: string): StraceEvent | null {
    const m = LINE.exec(text);
    if (!m) return null;
    const pid = Number(m[1]);
    const ts = Number(m[2]);
    let call = m[3]!;
    if (call.startsWith('---') || call.startsWith('+++')) return null;
    const unfinished = / <unfinished \.\.\.>$/.exec(call);
    if (unfinished) {
      const name = call.slice(0, call.indexOf('('));
      this.unfinished.set(`${pid}:${name}`, { ts, head: call.slice(0, unfinished.index) });
      return null;
    }
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(call);
    if (resumed) {
      const key = `${pid}:${resumed[1]}`;
      const start = this.unfinished.get(key);
      if (!start) return null;
      this.unfinished.delete(key);
      call = `${start.head}${resumed[2]}`;
      return parseCall(pid, start.ts, call);
    }
    return parseCall(pid, ts, call);
  }
}

/** How a sandbox's warning that the file-open ledger was not recorded begins (the trial reads it back). */
export const FILE_OPENS_UNRECORDED = 'file opens not recorded';

/**
 * Deleting or renaming waits this long (microseconds) under strace, so that the watcher can keep a
 * file that was just read before it goes (about 5 s for `rm -rf` of 2,000 files).
 */
export const DELETE_DELAY_US = 2000;

/** strace's command-line options for the file-open ledger. */
export function straceOptions(outputPath: string): string[] {
  return [
    '--pidns-translation',
    '-f',
    '-qq',
    '-ttt',
    '-y',
    '-s',
    '4096',
    '--seccomp-bpf',
    '-e',
    `trace=${FILE_TRACE_SYSCALLS.join(',')}`,
    '-e',
    `inject=unlink,unlinkat,rename,renameat,renameat2:delay_enter=${DELETE_DELAY_US}`,
    '-o',
    outputPath,
  ];
}
