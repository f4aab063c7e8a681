import { randomBytes } from 'node:crypto';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';

/**
 * A checkpoint whose config.json maps AutoModelForCausalLM (`auto_map`) to custom modelling code
 * that, when transformers loads it with trust_remote_code, tries to steal and escape before it
 * builds a perfectly working model: it reads credential-looking variables and files, lists and reads
 * PTB_HOME and another trial's directory, reads the harness's /proc/<pid>/environ, writes outside its
 * scratch, and connects out (TCP to a loopback listener of the test, DNS). It prints what it tried,
 * one JSON line after HOSTILE_REPORT_TAG, and also tries to leave the report at each write target.
 */

export const HOSTILE_REPORT_TAG = 'PTB-HOSTILE-REPORT';

export interface HostileTargets {
  /** Files to read (credentials, another trial's secret, the harness's environ). */
  read: string[];
  /** Directories to list. */
  list: string[];
  /** Files to create (outside the scratch: each must fail in the sandbox). */
  write: string[];
  /** 127.0.0.1 ports to connect to (a listener on the host). */
  tcpPorts: number[];
  /** Names to resolve. */
  dns: string[];
  /** Secret values to look for in everything read (the test's canaries). */
  canaries: string[];
}

export interface HostileAttempt {
  kind: 'env' | 'read' | 'list' | 'write' | 'tcp' | 'dns' | 'proc-environ' | 'scratch';
  target: string;
  /** The attempt worked (for `scratch`, the control, that is expected). */
  ok: boolean;
  detail: string;
  /** A canary value turned up in what it got. */
  leaked: boolean;
}

export interface HostileReport {
  pid: number;
  uid: number;
  home: string;
  attempts: HostileAttempt[];
}

const HOSTILE_MODEL_PY = `"""Custom modelling code of a hostile checkpoint (a ptb test fixture)."""
import json
import os
import re
import socket
import sys

from transformers.models.qwen3.modeling_qwen3 import Qwen3ForCausalLM

TAG = "${HOSTILE_REPORT_TAG}"


def _err(exc):
    return f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"


class HostileForCausalLM(Qwen3ForCausalLM):
    def __init__(self, config):
        targets = getattr(config, "ptb_hostile_targets", None) or {}
        canaries = [c for c in targets.get("canaries", []) if c]
        attempts = []

        def leaked(text):
            return any(c in text for c in canaries)

        def attempt(kind, target, ok, detail, got=""):
            attempts.append({"kind": kind, "target": target, "ok": ok, "detail": detail, "leaked": leaked(got)})

        # 1. Credentials in the environment.
        for name, value in sorted(os.environ.items()):
            upper = name.upper()
            if re.search(r"(KEY|TOKEN|SECRET|PASSWORD)$|CRED|PTB_HOME|GRADER", upper) or leaked(value):
                attempt("env", name, True, "present", value)
        # 2. Files: credentials, PTB_HOME, another trial.
        for path in targets.get("read", []):
            try:
                with open(path, "rb") as f:
                    text = f.read(1 << 16).decode("utf-8", "replace")
                attempt("read", path, True, f"read {len(text)} bytes", text)
            except Exception as exc:
                attempt("read", path, False, _err(exc))
        for path in targets.get("list", []):
            try:
                names = os.listdir(path)
                attempt("list", path, True, f"{len(names)} entries: {names[:20]}", " ".join(names))
            except Exception as exc:
                attempt("list", path, False, _err(exc))
        # 3. Every process's environment this code can see (the harness's, if it were visible).
        seen = 0
        for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    text = f.read().decode("utf-8", "replace")
                seen += 1
                if leaked(text):
                    attempt("proc-environ", f"/proc/{pid}/environ", True, "canary found", text)
            except Exception:
                pass
        attempt("proc-environ", "/proc/*/environ", False, f"{seen} readable, no canary among them")
        # 4. Writes outside the scratch, and one inside it (the control).
        report_text = lambda: json.dumps({"attempts": attempts})
        for path in targets.get("write", []):
            try:
                with open(path, "w") as f:
                    f.write("written by hostile custom code\\n")
                attempt("write", path, True, "created")
            except Exception as exc:
                attempt("write", path, False, _err(exc))
        home = os.path.expanduser("~")
        try:
            with open(os.path.join(home, "hostile_report.json"), "w") as f:
                f.write(report_text())
            attempt("scratch", home, True, "wrote hostile_report.json")
        except Exception as exc:
            attempt("scratch", home, False, _err(exc))
        # 5. Network: the test's loopback listener on the host, and DNS.
        for port in targets.get("tcpPorts", []):
            try:
                s = socket.create_connection(("127.0.0.1", int(port)), timeout=3)
                s.sendall(b"hello from hostile code\\n")
                s.close()
                attempt("tcp", f"127.0.0.1:{port}", True, "connected")
            except Exception as exc:
                attempt("tcp", f"127.0.0.1:{port}", False, _err(exc))
        for host in targets.get("dns", []):
            try:
                infos = socket.getaddrinfo(host, 443)
                attempt("dns", host, True, str(infos[:1]))
            except Exception as exc:
                attempt("dns", host, False, _err(exc))
        report = {"pid": os.getpid(), "uid": os.getuid(), "home": home, "attempts": attempts}
        print(TAG + " " + json.dumps(report), file=sys.stderr, flush=True)
        super().__init__(config)
`;

/** Copy `baseModel` to `dir` and make it hostile with these targets. Returns `dir`. */
export function makeHostileCheckpoint(baseModel: string, dir: string, targets: HostileTargets): string {
  cpSync(baseModel, dir, { recursive: true });
  writeFileSync(join(dir, 'hostile_model.py'), HOSTILE_MODEL_PY);
  const configPath = join(dir, 'config.json');
  const config = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
  config.auto_map = { AutoModelForCausalLM: 'hostile_model.HostileForCausalLM' };
  config.ptb_hostile_targets = targets;
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  return dir;
}

/** Every report the hostile code printed into `text` (a log; lines may carry a timestamp prefix). */
export function hostileReports(text: string): HostileReport[] {
  return text
    .split('\n')
    .filter((line) => line.includes(`${HOSTILE_REPORT_TAG} {`))
    .map((line) =>
      JSON.parse(line.slice(line.indexOf(`${HOSTILE_REPORT_TAG} {`) + HOSTILE_REPORT_TAG.length + 1)),
    );
}

/** A TCP listener on the host's 127.0.0.1 that counts the connections it gets. */
export async function countingListener(): Promise<{
  port: number;
  connections(): number;
  close(): Promise<void>;
}> {
  let count = 0;
  const server: Server = createServer((socket) => {
    count++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    connections: () => count,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * Write targets in the host's own system directories, uniquely named: a sandbox that failed open
 * would create them on the machine running the tests, so the caller removes them afterwards
 * (removeHostProbes) whatever happened.
 */
export function hostRootProbes(): string[] {
  const id = randomBytes(6).toString('hex');
  return [`/ptb-hostile-${id}.txt`, `/etc/ptb-hostile-${id}.txt`];
}

export function removeHostProbes(paths: readonly string[]): void {
  for (const path of paths) rmSync(path, { force: true });
}
