/**
 * The harness-owned Python wrapper that runs an untrusted program and proves, with a per-run marker,
 * that the program ran to its last line. pythonRunner.ts explains the verdict; this file holds the
 * Python source and the constants both sides share.
 *
 * Protocol (fds as the wrapper sees them):
 *   stdin  <- one line with the marker, then the program's source (UTF-8); read to EOF before any
 *             program code runs, so the program finds stdin empty and cannot re-read the marker.
 *   fd 3   -> `R` as soon as the interpreter is up (tells a sandbox that failed to start apart from a
 *             program that failed), then the marker, written only by the finish step.
 *   argv   <- JSON settings: address-space limit and the directories native modules may load from.
 */

import { CTYPES_STAND_IN_SOURCE, CTYPES_STAND_IN_SUBMODULES } from './ctypesStandIn.ts';

/** First byte on the result fd: the wrapper started. */
export const READY_BYTE = 'R';
/** The result channel's fd number inside the interpreter. */
export const RESULT_FD = 3;

/**
 * Native modules that hand Python code raw memory access (ctypes, the C-API test modules, the
 * subinterpreter modules, cffi). The sandbox hides their files; the wrapper also refuses to import them.
 */
export const DENIED_NATIVE_MODULES: readonly string[] = [
  '_ctypes',
  '_ctypes_test',
  '_testcapi',
  '_testinternalcapi',
  '_testbuffer',
  '_testmultiphase',
  '_testsinglephase',
  '_testclinic',
  '_testimportmultiple',
  '_testexternalinspection',
  '_xxsubinterpreters',
  '_xxinterpchannels',
  '_xxinterpqueues',
  '_interpreters',
  '_interpchannels',
  '_interpqueues',
  '_xxtestfuzz',
  '_cffi_backend',
];

// \`ctypes\` itself is served by a pure-Python stand-in (ctypesStandIn.ts); its native part stays refused.
const DENIED_IMPORTS = [...DENIED_NATIVE_MODULES];

/**
 * Audit events the program may not raise: ways to reach objects it holds no reference to (gc walks),
 * to steer control flow (tracing can jump over lines), to add hooks that would see ours, to build
 * code objects by hand, or to load native code.
 */
const DENIED_EVENTS = [
  'gc.get_objects',
  'gc.get_referrers',
  'gc.get_referents',
  'sys._current_frames',
  'sys._current_exceptions',
  'sys.settrace',
  'sys.setprofile',
  'sys.monitoring.register_callback',
  'sys.addaudithook',
  'code.__new__',
  'marshal.load',
  'sqlite3.enable_load_extension',
  'sqlite3.load_extension',
];

// The vault line must stay one physical line: a trace-function jump can only land on a line start,
// where the stack (and the marker on it) is discarded. See pythonRunner.ts for the whole argument.
const WRAPPER_TEMPLATE = `import os, sys

def _ptb_prepare():
    import json, resource, types
    settings = json.loads(sys.argv[1])
    write, exit_, getframe, open_, read, close = os.write, os._exit, sys._getframe, os.open, os.read, os.close
    str_, bytes_, type_, tuple_ = str, bytes, type, tuple
    RuntimeError_, StopIteration_, BaseException_, OSError_ = RuntimeError, StopIteration, BaseException, OSError
    ModuleNotFoundError_ = ModuleNotFoundError
    get_ident = __import__("_thread").get_ident
    write(RESULT_FD, READY_BYTE)
    chunks = []
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    data = b"".join(chunks)
    del chunks
    newline = data.index(b"\\n")
    source = data[newline + 1:].decode("utf-8")
    if settings["addressSpaceBytes"]:
        limit = settings["addressSpaceBytes"]
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    wrapper_frame = getframe(1)
    finish_line = FINISH_LINE
    trusted_roots = tuple_(root.rstrip("/") + "/" for root in settings["nativeRoots"])
    denied_imports = frozenset(DENIED_IMPORTS)
    denied_events = frozenset(DENIED_EVENTS)
    # types.coroutine re-flags an existing code object (code.replace: same bytecode, one more flag);
    # asyncio, and so joblib and scikit-learn, run it at import time.
    coroutine_code = types.coroutine.__code__

    def vault(write, fd, getframe, hook_code, wrapper_frame, finish_line): write(fd, (b"", (yield), (yield))[getframe(1).f_code is hook_code and getframe(2) is wrapper_frame and getframe(2).f_lineno == finish_line])

    last_trusted_pyc = {}

    def read_file(path):
        fd = open_(path, 0)
        try:
            parts = []
            while True:
                part = read(fd, 1 << 20)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        finally:
            close(fd)

    def hook(event, args):
        if type_(event) is not str_:
            raise RuntimeError_("audit events must be plain str here")
        if event == "open":
            path = args[0]
            if type_(path) is str_ and path.endswith(".pyc"):
                if path.startswith(trusted_roots):
                    last_trusted_pyc[get_ident()] = path
                else:
                    last_trusted_pyc.pop(get_ident(), None)
            return
        if event == "marshal.loads":
            # Code objects may come only from the interpreter's own .pyc files, byte for byte: hand-made
            # bytecode is the classic way to read arbitrary memory from pure Python.
            data, path = args[0], last_trusted_pyc.pop(get_ident(), None)
            try:
                trusted = path is not None and type_(data) is bytes_ and read_file(path)[16:] == data
            except OSError_:
                trusted = False
            if not trusted:
                raise RuntimeError_("marshal.loads is allowed only for the interpreter's own .pyc files")
            return
        if event == "ptb.finish":
            if getframe(1) is not wrapper_frame or wrapper_frame.f_lineno != finish_line:
                raise RuntimeError_("ptb.finish is reserved for the harness")
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException_:
                    pass
            try:
                guard.send(True)
            except StopIteration_:
                pass
            exit_(0)
        if event == "code.__new__" and getframe(1).f_code is coroutine_code:
            return
        if event in denied_events:
            raise RuntimeError_(event + " is not allowed in the sandbox")
        if event == "object.__getattr__" and args[0] is guard:
            raise RuntimeError_("the harness generator is off limits")
        if event == "import":
            name = args[0]
            if type_(name) is str_ and name.partition(".")[0] in denied_imports:
                # ImportError, as if the module were not installed, for libraries that use it optionally.
                raise ModuleNotFoundError_("import of " + name + " is not allowed in the sandbox")
            path = args[1]
            if path is not None and not (type_(path) is str_ and path.startswith(trusted_roots)):
                raise RuntimeError_("native modules load only from the interpreter's own directories")
        if event.startswith("ctypes."):
            raise RuntimeError_(event + " is not allowed in the sandbox")

    guard = vault(write, RESULT_FD, getframe, hook.__code__, wrapper_frame, finish_line)
    next(guard)
    guard.send(data[:newline])
    del data
    code = compile(source, "<program>", "exec")
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = module
    sys.argv = ["<program>"]
    import importlib.machinery
    stand_ins = CTYPES_STAND_INS

    class StandInFinder:
        # Serves the ctypes stand-in (types and sizes, no memory access) before the real module.
        def find_spec(self, name, path=None, target=None):
            if name in stand_ins:
                return importlib.machinery.ModuleSpec(name, self, is_package=name == "ctypes")
            return None

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            exec(compile(stand_ins[module.__name__], "<ctypes stand-in>", "exec"), module.__dict__)

    sys.meta_path.insert(0, StandInFinder())
    sys.settrace = _ptb_allow_only_none(sys.settrace)
    sys.setprofile = _ptb_allow_only_none(sys.setprofile)
    sys.addaudithook(hook)
    return code, module.__dict__

def _ptb_allow_only_none(setter):
    # doctest and friends reset tracing with settrace(None); nothing is being traced, so that is a no-op.
    def guarded(function):
        if function is not None:
            setter(function)
    return guarded

_ptb_code, _ptb_namespace = _ptb_prepare()
del _ptb_prepare
exec(_ptb_code, _ptb_namespace)
sys.audit("ptb.finish")
`;

function pythonSetLiteral(values: readonly string[]): string {
  return `{${values.map((value) => JSON.stringify(value)).join(', ')}}`;
}

function buildWrapperSource(): string {
  const lines = WRAPPER_TEMPLATE.split('\n');
  const finishLine = lines.indexOf('sys.audit("ptb.finish")') + 1;
  if (finishLine <= 0) throw new Error('python wrapper template lost its finish line');
  return WRAPPER_TEMPLATE.replace('FINISH_LINE', String(finishLine))
    .replace('write(RESULT_FD, READY_BYTE)', `write(${RESULT_FD}, b${JSON.stringify(READY_BYTE)})`)
    .replace('vault(write, RESULT_FD,', `vault(write, ${RESULT_FD},`)
    .replace('frozenset(DENIED_IMPORTS)', `frozenset(${pythonSetLiteral(DENIED_IMPORTS)})`)
    .replace('frozenset(DENIED_EVENTS)', `frozenset(${pythonSetLiteral(DENIED_EVENTS)})`)
    .replace(
      'CTYPES_STAND_INS',
      JSON.stringify({ ctypes: CTYPES_STAND_IN_SOURCE, ...CTYPES_STAND_IN_SUBMODULES }),
    );
}

/** The wrapper's source, passed to the interpreter with `-c`. It holds no secret. */
export const PYTHON_WRAPPER_SOURCE = buildWrapperSource();

export interface WrapperSettings {
  /** RLIMIT_AS for the interpreter, or null for none. */
  addressSpaceBytes: number | null;
  /** Directories native extension modules may be loaded from (the interpreter's own prefixes). */
  nativeRoots: readonly string[];
}

/** Interpreter arguments: isolated mode (no user site, no PYTHON* variables), no .pyc writes. */
export function wrapperArgv(interpreter: string, settings: WrapperSettings): string[] {
  return [interpreter, '-I', '-B', '-c', PYTHON_WRAPPER_SOURCE, JSON.stringify(settings)];
}

/** What goes to the wrapper's stdin. */
export function wrapperStdin(marker: string, program: string): Buffer {
  return Buffer.from(`${marker}\n${program}`, 'utf8');
}

/** The verdict: the interpreter exited 0 and the result channel holds exactly the ready byte and marker. */
export function provesCompletion(exitCode: number | null, resultChannel: Buffer, marker: string): boolean {
  return exitCode === 0 && resultChannel.equals(Buffer.from(READY_BYTE + marker, 'utf8'));
}

/** The wrapper got as far as starting the interpreter. */
export function interpreterStarted(resultChannel: Buffer): boolean {
  return resultChannel.length > 0 && resultChannel[0] === READY_BYTE.charCodeAt(0);
}
