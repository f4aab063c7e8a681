import { describe, expect, it, vi } from 'vitest';
import {
  type SandboxedCodeRunResult,
  SandboxedPythonRunner,
  UnsandboxedPythonRunner,
} from '../../src/sandbox/pythonRunner.ts';
import { isRoot, sandboxAvailable, uniqueToken, waitUntilGone } from './helpers.ts';

// Real processes on possibly busy CI machines: allow far more than the default 5 s per test.
vi.setConfig({ testTimeout: 60_000 });

/** A stand-in for HumanEval's tests: they fail, so only cheating could make the program "complete". */
const FAILING_TESTS = '\n\ndef check(candidate):\n    assert candidate(2) == 5\n\ncheck(solve)\n';
const PASSING_TESTS = '\n\ndef check(candidate):\n    assert candidate(2) == 4\n\ncheck(solve)\n';
const SOLUTION = 'def solve(x):\n    return x * 2\n';

/**
 * Completions that try to get a failing program counted as passed. Each is placed before the failing
 * tests, exactly where a model's completion goes in a HumanEval program.
 */
const EXPLOITS: Record<string, string> = {
  'sys.exit(0)': 'import sys\nsys.exit(0)',
  'raise SystemExit': 'raise SystemExit',
  'raise SystemExit(0)': 'raise SystemExit(0)',
  'exit() builtin': 'exit()',
  'quit(0) builtin': 'quit(0)',
  'os._exit(0)': 'import os\nos._exit(0)',
  'os.kill(self, SIGKILL)': 'import os, signal\nos.kill(os.getpid(), signal.SIGKILL)',
  'os.kill(self, SIGTERM)': 'import os, signal\nos.kill(os.getpid(), signal.SIGTERM)',
  'os.abort()': 'import os\nos.abort()',
  'SIGALRM handler exits 0 mid-test':
    'import os, signal\nsignal.signal(signal.SIGALRM, lambda *a: os._exit(0))\nsignal.setitimer(signal.ITIMER_REAL, 0.05)\n' +
    'import time\n_real_check_delay = time.sleep(0.2)',
  'atexit handler exits 0': 'import atexit, os\natexit.register(lambda: os._exit(0))',
  'atexit handler raises the finish event':
    'import atexit, sys, os\ndef _fin():\n    try:\n        sys.audit("ptb.finish")\n    finally:\n        os._exit(0)\natexit.register(_fin)',
  'raise the finish event directly':
    'import sys, os\ntry:\n    sys.audit("ptb.finish")\nexcept BaseException:\n    pass\nos._exit(0)',
  'close stdout/stderr, then exit 0':
    'import os, sys\nsys.stdout.close()\nos.close(1)\nos.close(2)\nsys.exit(0)',
  'redirect stdout and print a fake pass':
    'import os, sys\nprint("ALL TESTS PASSED")\nsys.stdout = open(os.devnull, "w")\nsys.exit(0)',
  'kill the parent and everything else, then exit 0':
    'import os, signal\nfor pid in (os.getppid(), 1, -1):\n    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\nos._exit(0)',
  'guess a marker on fd 3': 'import os\nos.write(3, b"R" + b"0" * 64)\nos._exit(0)',
  'write to every fd':
    'import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b"R")\n    except OSError:\n        pass\nos._exit(0)',
  'read own source, argv and command line for the marker':
    'import os, sys, re\nfound = []\nsources = (lambda: open(__file__).read(), lambda: open("/proc/self/cmdline").read(),\n' +
    '           lambda: " ".join(sys.argv), lambda: open("/dev/stdin").read(), lambda: str(dict(os.environ)))\n' +
    'for source in sources:\n    try:\n        found += re.findall(r"[0-9a-f]{64}", source())\n    except Exception:\n        pass\n' +
    'for m in found:\n    os.write(3, b"R" + m.encode())\nos._exit(0)',
  're-read stdin for the marker':
    'import os, sys\ndata = sys.stdin.buffer.read() + os.read(0, 1000)\nos.write(3, data)\nos._exit(0)',
  'scan gc for the marker':
    'import gc, os, re\ntry:\n    objs = gc.get_objects()\nexcept RuntimeError:\n    objs = []\n' +
    'for o in objs:\n    if isinstance(o, (bytes, str)) and re.fullmatch(r"[0-9a-f]{64}", o if isinstance(o, str) else o.decode("latin1")):\n' +
    '        os.write(3, o if isinstance(o, bytes) else o.encode())\nos._exit(0)',
  'walk frames for the marker':
    'import os, sys, re\nseen = []\nf = sys._getframe()\nwhile f is not None:\n    for scope in (f.f_locals, f.f_globals):\n' +
    '        for v in list(scope.values()):\n            if isinstance(v, (bytes, bytearray)) and re.fullmatch(rb"[0-9a-f]{64}", bytes(v)):\n' +
    '                seen.append(bytes(v))\n    f = f.f_back\nfor s in seen:\n    os.write(3, s)\nos._exit(0)',
  'catch the hook frame with a signal handler, then use the vault':
    'import os, signal, sys, time\ngot = {}\ndef handler(signum, frame):\n    f = frame\n    while f is not None:\n' +
    '        if "guard" in f.f_locals:\n            got.update(f.f_locals)\n        f = f.f_back\n' +
    'signal.signal(signal.SIGALRM, handler)\nsignal.setitimer(signal.ITIMER_REAL, 0.00005, 0.00005)\n' +
    'end = time.time() + 2\nwhile time.time() < end and "guard" not in got:\n    open(os.devnull).close()\n' +
    'signal.setitimer(signal.ITIMER_REAL, 0)\nfor value in got.values():\n    if isinstance(value, bytes) and len(value) == 64:\n        os.write(3, value)\n' +
    'g = got.get("guard")\nif g is not None:\n    try:\n        g.gi_frame\n    except RuntimeError:\n        pass\n    try:\n        g.send(True)\n    except StopIteration:\n        pass\nos._exit(0)',
  'forge the finish from a finaliser while the wrapper unwinds':
    'import os, signal, sys, time, types, functools\ngot = {}\ndef handler(signum, frame):\n    f = frame\n    while f is not None:\n' +
    '        if "guard" in f.f_locals and "code" not in got:\n            got.update(loc=dict(f.f_locals), code=f.f_code, glob=f.f_globals)\n        f = f.f_back\n' +
    'signal.signal(signal.SIGALRM, handler)\nsignal.setitimer(signal.ITIMER_REAL, 0.00005, 0.00005)\n' +
    'end = time.time() + 2\nwhile time.time() < end and "code" not in got:\n    open(os.devnull).close()\n' +
    'signal.setitimer(signal.ITIMER_REAL, 0)\ncells = tuple(types.CellType(got["loc"][n]) for n in got["code"].co_freevars)\n' +
    'fake = types.FunctionType(got["code"], got["glob"], "hook", None, cells)\n' +
    'class Bomb:\n    __del__ = functools.partial(fake, "ptb.finish", ())\nbomb = Bomb()\n' +
    'sys._getframe(1).f_globals.pop("_ptb_namespace", None)',
  'trace and jump over the failing assertion':
    'import sys\ndef tracer(frame, event, arg):\n    if frame.f_code.co_name == "check" and event == "line":\n' +
    '        try:\n            frame.f_lineno = frame.f_lineno + 1\n        except ValueError:\n            pass\n    return tracer\n' +
    'try:\n    sys.settrace(tracer)\nexcept RuntimeError:\n    pass',
  'exit 0 from a thread while the tests run':
    'import os, threading, time\nthreading.Thread(target=lambda: (time.sleep(0.1), os._exit(0))).start()\ntime.sleep(0.5)',
  'fork: child exits 0 first': 'import os\nif os.fork() == 0:\n    os._exit(0)\nos.wait()',
  'native memory access through ctypes':
    'import os\ntry:\n    import ctypes\nexcept Exception:\n    pass\nos._exit(0)',
  'hand-made bytecode through marshal, after opening a trusted .pyc':
    'import importlib.util, marshal, os\nopen(importlib.util.cache_from_source(os.__file__), "rb").read()\n' +
    'try:\n    marshal.loads(marshal.dumps(compile("1", "x", "eval")))\nexcept RuntimeError:\n    pass\nos._exit(0)',
  'add an audit hook of our own':
    'import sys, os\ntry:\n    sys.addaudithook(lambda e, a: None)\nexcept RuntimeError:\n    pass\nos._exit(0)',
};

/** Exploits that do not even reach exit status 0; every other one does, so exit status alone would be fooled. */
const EXPLOITS_NOT_EXITING_ZERO = new Set([
  'os.kill(self, SIGKILL)',
  'os.kill(self, SIGTERM)',
  'os.abort()',
  'forge the finish from a finaliser while the wrapper unwinds',
  'trace and jump over the failing assertion',
  'fork: child exits 0 first',
]);

const runner = sandboxAvailable ? new SandboxedPythonRunner() : undefined;

async function run(program: string, timeoutMs = 10_000): Promise<SandboxedCodeRunResult> {
  return runner!.runPython(program, { timeoutMs });
}

describe.skipIf(!sandboxAvailable)('SandboxedPythonRunner verdicts', () => {
  it('scores a normal passing program as completed and a failing one as not', async () => {
    const passed = await run(`${SOLUTION}${PASSING_TESTS}print("done")`);
    expect(passed.completed).toBe(true);
    expect(passed.exitCode).toBe(0);
    expect(passed.stdout).toBe('done\n');
    const failed = await run(`${SOLUTION}${FAILING_TESTS}`);
    expect(failed.completed).toBe(false);
    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toContain('AssertionError');
    const syntax = await run('def solve(x) return x');
    expect(syntax.completed).toBe(false);
    expect(syntax.stderr).toContain('SyntaxError');
  });

  it('imports stdlib modules that were not loaded yet (their .pyc files are trusted)', async () => {
    const result = await run(`import fractions, json.tool, statistics, typing\n${SOLUTION}${PASSING_TESTS}`);
    expect(result.stderr).toBe('');
    expect(result.completed).toBe(true);
  });

  it('still scores a passing program as completed when it closes stdout or runs doctest', async () => {
    const closed = await run(`import sys, os\nsys.stdout.close()\nos.close(1)\n${SOLUTION}${PASSING_TESTS}`);
    expect(closed.completed).toBe(true);
    const doctested = await run(
      `def solve(x):\n    """\n    >>> solve(2)\n    4\n    """\n    return x * 2\n` +
        `if __name__ == "__main__":\n    import doctest\n    doctest.testmod()\n${PASSING_TESTS}`,
    );
    expect(doctested.stderr).toBe('');
    expect(doctested.completed).toBe(true);
  });

  for (const [name, exploit] of Object.entries(EXPLOITS)) {
    it(`scores "${name}" before failing tests as not completed`, async () => {
      const result = await run(`${SOLUTION}${exploit}\n${FAILING_TESTS}`);
      expect(result.completed).toBe(false);
      expect(result.timedOut).toBe(false);
      if (!EXPLOITS_NOT_EXITING_ZERO.has(name)) expect(result.exitCode).toBe(0);
    });
  }

  it('the exploits are not refused wholesale: each passes when its tests pass and it does not exit early', async () => {
    // Guards against a verdict that is simply always false: marker-hunting code that does not exit
    // early, followed by passing tests, still completes.
    const hunting =
      'import os, sys, re\nf = sys._getframe()\nwhile f is not None:\n    list(f.f_locals)\n    f = f.f_back\n' +
      'try:\n    import gc\n    gc.get_objects()\nexcept RuntimeError:\n    pass\n';
    const result = await run(`${SOLUTION}${hunting}${PASSING_TESTS}`);
    expect(result.completed).toBe(true);
  });
});

describe.skipIf(!sandboxAvailable)('SandboxedPythonRunner isolation and limits', () => {
  it('sees no host environment, no /etc, /proc or home, and cannot write outside its work dir', async () => {
    process.env.PTB_TEST_API_KEY = 'sk-test-not-for-the-sandbox';
    try {
      const program = [
        'import os, json',
        'out = {"env": sorted(os.environ), "cwd": os.getcwd(), "uid": os.getuid()}',
        'out["visible"] = {p: os.path.exists(p) for p in ("/etc/passwd", "/proc/self", "/root", "/home", "/work", "/sys")}',
        'writes = {}',
        'for p in ("/usr/x", "/x", "/etc/x", "/sandbox/ok", "/tmp/ok"):',
        '    try:',
        '        open(p, "w").write("x"); writes[p] = True',
        '    except OSError:',
        '        writes[p] = False',
        'out["writes"] = writes',
        'print(json.dumps(out))',
      ].join('\n');
      const result = await run(program);
      expect(result.completed).toBe(true);
      const out = JSON.parse(result.stdout) as Record<string, unknown>;
      expect(out.env).toEqual(['HOME', 'LANG', 'PATH', 'PWD']);
      expect(result.stdout).not.toContain('sk-test-not-for-the-sandbox');
      expect(out.uid).toBe(1000);
      expect(out.cwd).toBe('/sandbox');
      expect(out.visible).toEqual({
        '/etc/passwd': false,
        '/proc/self': false,
        '/root': false,
        '/home': false,
        '/work': false,
        '/sys': false,
      });
      expect(out.writes).toEqual({
        '/usr/x': false,
        '/x': false,
        '/etc/x': false,
        '/sandbox/ok': true,
        '/tmp/ok': true,
      });
    } finally {
      delete process.env.PTB_TEST_API_KEY;
    }
  });

  it('has no network', async () => {
    const result = await run(
      'import socket\ns = socket.socket()\ns.settimeout(2)\ntry:\n    s.connect(("192.0.2.1", 80))\n    print("connected")\nexcept OSError as e:\n    print(e.errno)',
    );
    expect(result.stdout.trim()).toBe('101');
  });

  it('kills an endless loop and its forked, sleeping descendants at the time limit', async () => {
    const token = uniqueToken();
    const started = Date.now();
    const result = await run(
      `import os, subprocess\nsubprocess.Popen(["sleep", "908.${token}"], start_new_session=True)\n` +
        `if os.fork() == 0:\n    os.execvp("sleep", ["sleep", "909.${token}"])\nwhile True:\n    pass`,
      1000,
    );
    expect(result.timedOut).toBe(true);
    expect(result.completed).toBe(false);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await waitUntilGone(token)).toEqual([]);
  });

  it('turns a memory hog into a failure (address-space limit inside the sandbox)', async () => {
    const result = await run('x = bytearray(3 << 30)\nprint("allocated")');
    expect(result.completed).toBe(false);
    expect(result.stderr).toContain('MemoryError');
  });

  it.skipIf(!isRoot)(
    'stops a memory hog at the cgroup limit when no address-space limit is set',
    async () => {
      const lenient = new SandboxedPythonRunner({ memoryBytes: 200 << 20, addressSpaceBytes: null });
      const result = await lenient.runPython('x = bytearray(1 << 30)\nprint("allocated")', {
        timeoutMs: 20_000,
      });
      expect(result.completed).toBe(false);
      expect(result.oomKilled).toBe(true);
      expect(result.enforced.memory).toBe(true);
    },
  );

  it.skipIf(!isRoot)('contains a fork bomb with the pids limit', async () => {
    const token = uniqueToken();
    const result = await run(
      `import os, time\nfor _ in range(10000):\n    try:\n        os.fork()\n    except OSError:\n        pass\ntime.sleep(910.${token})`,
      3000,
    );
    expect(result.completed).toBe(false);
    expect(result.enforced.pids).toBe(true);
    expect(await waitUntilGone(token)).toEqual([]);
  });

  it('runs many programs in parallel', async () => {
    const parallel = new SandboxedPythonRunner({ concurrency: 8 });
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        parallel.runPython(`import time\ntime.sleep(0.5)\nassert ${i} == ${i}`, { timeoutMs: 20_000 }),
      ),
    );
    expect(results.every((r) => r.completed)).toBe(true);
    // 16 half-second sleeps, 8 at a time: about 1 s plus start-up, far below the 8 s of a serial run.
    expect(Date.now() - started).toBeLessThan(6000);
  });
});

describe('UnsandboxedPythonRunner (same verdict, no isolation)', () => {
  const plain = new UnsandboxedPythonRunner();
  it('gives the same verdicts on normal programs and early exits', async () => {
    const run = (program: string) => plain.runPython(program, { timeoutMs: 10_000 });
    expect((await run(`${SOLUTION}${PASSING_TESTS}`)).completed).toBe(true);
    expect((await run(`${SOLUTION}${FAILING_TESTS}`)).completed).toBe(false);
    for (const name of ['sys.exit(0)', 'os._exit(0)', 'atexit handler exits 0', 'guess a marker on fd 3']) {
      const result = await run(`${SOLUTION}${EXPLOITS[name]}\n${FAILING_TESTS}`);
      expect(result.completed, name).toBe(false);
    }
  });

  it('kills a program at its time limit', async () => {
    const result = await plain.runPython('while True:\n    pass', { timeoutMs: 500 });
    expect(result.timedOut).toBe(true);
    expect(result.completed).toBe(false);
  });
});
