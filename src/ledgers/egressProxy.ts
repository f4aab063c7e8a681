/**
 * The sandbox's one way out: an HTTP proxy on a Unix socket (bridged onto the sandbox's loopback) that
 * decides every connection under a policy and appends one EgressEvent per CONNECT tunnel or plain-HTTP
 * request to the egress ledger: host, port, bytes each way, duration, allowed or denied and the rule.
 *
 * Policy: `open` (the reference: internet unrestricted) still denies LLM provider hosts, whose calls must
 * go through the model relay; `allowlist` allows only the listed hosts; `none` denies everything.
 * Whatever the mode, the proxy never connects to its own machine's loopback or link-local addresses
 * (and, unless allowed, private networks): the host's services are not the agent's to reach.
 * A TLS tunnel's ClientHello is read for its server name, so naming an IP address in CONNECT does not
 * get round a denied host name.
 */

import { lookup } from 'node:dns/promises';
import { appendFileSync, chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { dirname } from 'node:path';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { EgressEvent } from '../core/trial.ts';
import { hostMatches, normalizeHost, PROVIDER_HOST_PATTERNS } from './providerHosts.ts';

export type EgressMode = 'open' | 'none' | 'allowlist';

export interface EgressPolicy {
  mode: EgressMode;
  /** Hosts allowed under `allowlist` (`*.example.com` patterns allowed). */
  allowHosts?: readonly string[];
  /** Hosts denied in every mode (default: the LLM provider hosts). */
  deniedHosts?: readonly string[];
  /** Allow destinations on private networks (10/8, 172.16/12, 192.168/16, fc00::/7). Default false. */
  allowPrivateNetworks?: boolean;
}

export interface EgressDecision {
  allowed: boolean;
  rule: string;
}

/** Decide by host name alone (the address check comes after resolution). */
export function decideEgress(policy: EgressPolicy, host: string): EgressDecision {
  const name = normalizeHost(host);
  if (policy.mode === 'none') return { allowed: false, rule: 'network-none' };
  const denied = policy.deniedHosts ?? PROVIDER_HOST_PATTERNS;
  if (denied.some((pattern) => hostMatches(name, pattern)))
    return { allowed: false, rule: 'provider-host-denied' };
  if (policy.mode === 'allowlist') {
    return (policy.allowHosts ?? []).some((pattern) => hostMatches(name, pattern))
      ? { allowed: true, rule: 'allowlist' }
      : { allowed: false, rule: 'not-in-allowlist' };
  }
  return { allowed: true, rule: 'open' };
}

/** Address classes the proxy must not connect to on the agent's behalf. */
export function addressClass(address: string): 'public' | 'local' | 'private' {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const ip = mapped ? mapped[1]! : address;
  if (isIP(ip) === 4) {
    const [a = 0, b = 0] = ip.split('.').map(Number);
    if (a === 127 || a === 0 || (a === 169 && b === 254) || a >= 224) return 'local';
    if (
      a === 10 ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 100 && b >= 64 && b <= 127)
    )
      return 'private';
    return 'public';
  }
  const lower = ip.toLowerCase();
  if (lower === '::1' || lower === '::' || /^fe[89ab]/.test(lower) || lower.startsWith('ff')) return 'local';
  if (/^f[cd]/.test(lower)) return 'private';
  return 'public';
}

/**
 * Whether `address` belongs to one of this machine's own interfaces. A service listening on all
 * interfaces answers on each of them, and an interface's address can be public (a cloud VM's), so the
 * address class alone does not keep the host's services out of reach.
 */
export function isOwnAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const ip = (mapped ? mapped[1]! : address).toLowerCase();
  return Object.values(networkInterfaces()).some((list) =>
    (list ?? []).some((a) => a.address.toLowerCase().split('%')[0] === ip),
  );
}

/** The server name of a TLS ClientHello at the start of `data`, or null (not TLS, or cut short). */
export function parseTlsServerName(data: Buffer): string | null {
  try {
    if (data.length < 43 || data[0] !== 0x16 || data[5] !== 0x01) return null;
    let at = 9 + 2 + 32; // record header 5 + handshake header 4, client version, random
    at += 1 + data[at]!; // session id
    at += 2 + data.readUInt16BE(at); // cipher suites
    at += 1 + data[at]!; // compression methods
    const end = Math.min(data.length, at + 2 + data.readUInt16BE(at));
    at += 2;
    while (at + 4 <= end) {
      const type = data.readUInt16BE(at);
      const length = data.readUInt16BE(at + 2);
      at += 4;
      if (type === 0x0000) {
        // server_name list: list length (2), then entries of type (1), length (2), name
        let entry = at + 2;
        while (entry + 3 <= at + length) {
          const nameLength = data.readUInt16BE(entry + 1);
          if (data[entry] === 0) return data.subarray(entry + 3, entry + 3 + nameLength).toString('ascii');
          entry += 3 + nameLength;
        }
        return null;
      }
      at += length;
    }
  } catch {
    // cut short
  }
  return null;
}

/** Environment that points every proxy-aware tool in the sandbox at the bridged proxy port. */
export function proxyEnv(port: number): Record<string, string> {
  const url = `http://127.0.0.1:${port}`;
  const noProxy = '127.0.0.1,localhost,::1';
  return {
    HTTP_PROXY: url,
    HTTPS_PROXY: url,
    http_proxy: url,
    https_proxy: url,
    NO_PROXY: noProxy,
    no_proxy: noProxy,
  };
}

export interface EgressProxyOptions {
  /** Unix socket to listen on (replaced if a stale one is there). */
  socketPath: string;
  policy: EgressPolicy;
  /** The egress ledger (JSON lines, appended). */
  ledgerPath: string;
  /**
   * Test and deployment hook: where a host name really goes. A mapped host skips DNS and the address
   * check (the mapping is the harness's own decision).
   */
  resolve?: (host: string, port: number) => { host: string; port: number } | undefined;
  /** DNS lookup (default: the system resolver); returns every address of the name. */
  lookup?: (host: string) => Promise<string[]>;
  /** Called with each event after it is written. */
  onEvent?: (event: EgressEvent) => void;
  /** Give up connecting upstream after this long (default 30 s). */
  connectTimeoutMs?: number;
}

export interface EgressProxy {
  socketPath: string;
  /** Connections and requests seen so far, and how many were denied. */
  stats(): { total: number; denied: number };
  /** Stop listening, end open tunnels, remove the socket. */
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

async function systemLookup(host: string): Promise<string[]> {
  const found = await lookup(host, { all: true, verbatim: true });
  return found.map((entry) => entry.address);
}

function denialBody(host: string, port: number, rule: string): string {
  const why: Record<string, string> = {
    'provider-host-denied': 'LLM provider APIs are reachable only through the harness model relay',
    'network-none': 'this trial has no network access',
    'not-in-allowlist': 'the host is not on this trial’s allowlist',
    'local-address-denied': 'the proxy does not connect to addresses of the machine it runs on',
    'private-address-denied': 'the proxy does not connect to private networks',
  };
  return `ptb egress proxy: connection to ${host}:${port} denied (${rule}): ${why[rule] ?? rule}.\n`;
}

/** Split `host:port` (IPv6 in brackets) of a CONNECT target. */
function splitAuthority(authority: string, defaultPort: number): { host: string; port: number } | null {
  const match = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(authority);
  if (!match) return null;
  const port = match[3] ? Number(match[3]) : defaultPort;
  if (!Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { host: normalizeHost(match[1] ?? match[2]!), port };
}

export async function startEgressProxy(options: EgressProxyOptions): Promise<EgressProxy> {
  const doLookup = options.lookup ?? systemLookup;
  const connectTimeoutMs = options.connectTimeoutMs ?? 30_000;
  const openSockets = new Set<Duplex>();
  let total = 0;
  let denied = 0;
  mkdirSync(dirname(options.ledgerPath), { recursive: true });

  const record = (event: EgressEvent) => {
    total += 1;
    if (!event.allowed) denied += 1;
    appendFileSync(options.ledgerPath, `${JSON.stringify(event)}\n`);
    options.onEvent?.(event);
  };

  /** Policy, then resolution and the address check. */
  async function route(
    host: string,
    port: number,
  ): Promise<
    | { allowed: true; rule: string; address: string; port: number }
    | { allowed: false; rule: string; error?: string }
  > {
    const decision = decideEgress(options.policy, host);
    if (!decision.allowed) return { allowed: false, rule: decision.rule };
    const mapped = options.resolve?.(host, port);
    if (mapped) return { allowed: true, rule: decision.rule, address: mapped.host, port: mapped.port };
    let addresses: string[];
    try {
      addresses = isIP(host) ? [host] : await doLookup(host);
    } catch (err) {
      return {
        allowed: false,
        rule: 'unresolvable',
        error: err instanceof Error ? err.message : String(err),
      };
    }
    if (addresses.length === 0) return { allowed: false, rule: 'unresolvable', error: 'no address' };
    const classes = addresses.map(addressClass);
    if (classes.includes('local') || addresses.some(isOwnAddress))
      return { allowed: false, rule: 'local-address-denied' };
    if (classes.includes('private') && !options.policy.allowPrivateNetworks)
      return { allowed: false, rule: 'private-address-denied' };
    return { allowed: true, rule: decision.rule, address: addresses[0]!, port };
  }

  const server = createServer();
  // Tunnels and uploads may last hours (a model download); only header parsing has a deadline.
  server.requestTimeout = 0;
  server.on('connection', (socket: Socket) => {
    openSockets.add(socket);
    socket.on('close', () => openSockets.delete(socket));
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  server.on('connect', (req: IncomingMessage, client: Duplex, head: Buffer) => {
    void handleConnect(req, client, head);
  });

  async function handleConnect(req: IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    const started = Date.now();
    const target = splitAuthority(req.url ?? '', 443);
    client.on('error', () => client.destroy());
    const base = { ts: new Date().toISOString(), kind: 'connect' as const };
    if (!target) {
      client.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      record({
        ...base,
        host: String(req.url ?? ''),
        port: 0,
        allowed: false,
        rule: 'bad-request',
        bytesUp: 0,
        bytesDown: 0,
        durationMs: 0,
      });
      return;
    }
    const refuse = (status: string, rule: string, error?: string) => {
      const body = status.startsWith('403')
        ? denialBody(target.host, target.port, rule)
        : `ptb egress proxy: ${error ?? rule}\n`;
      client.end(
        `HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    };
    const routed = await route(target.host, target.port);
    if (!routed.allowed) {
      refuse(routed.rule === 'unresolvable' ? '502 Bad Gateway' : '403 Forbidden', routed.rule, routed.error);
      record({
        ...base,
        host: target.host,
        port: target.port,
        allowed: false,
        rule: routed.rule,
        bytesUp: 0,
        bytesDown: 0,
        durationMs: Date.now() - started,
        ...(routed.error ? { error: routed.error } : {}),
      });
      return;
    }
    let bytesUp = 0;
    let bytesDown = 0;
    let rule = routed.rule;
    let allowed = true;
    let error: string | undefined;
    let finished = false;
    const upstream = netConnect({ host: routed.address, port: routed.port });
    openSockets.add(upstream);
    const connectTimer = setTimeout(
      () => upstream.destroy(new Error('upstream connect timed out')),
      connectTimeoutMs,
    );
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(connectTimer);
      openSockets.delete(upstream);
      record({
        ...base,
        host: target.host,
        port: target.port,
        allowed,
        rule,
        bytesUp,
        bytesDown,
        durationMs: Date.now() - started,
        ...(error ? { error } : {}),
      });
    };
    let established = false;
    // The event is written once both sides are closed; an error on one side tears down the other.
    let openSides = 2;
    const sideClosed = () => {
      openSides -= 1;
      if (openSides === 0) finish();
    };
    upstream.on('error', (err) => {
      error ??= err.message;
      if (!established)
        refuse('502 Bad Gateway', rule, `cannot reach ${target.host}:${target.port}: ${err.message}`);
      else client.destroy();
    });
    upstream.on('close', sideClosed);
    client.on('close', () => {
      upstream.destroy();
      sideClosed();
    });
    upstream.on('connect', () => {
      established = true;
      clearTimeout(connectTimer);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      let first = true;
      const fromClient = (chunk: Buffer) => {
        if (first) {
          first = false;
          const serverName = parseTlsServerName(chunk);
          if (serverName && normalizeHost(serverName) !== target.host) {
            const byName = decideEgress(options.policy, serverName);
            if (!byName.allowed) {
              allowed = false;
              rule = `${byName.rule}-by-sni`;
              error = `TLS server name ${serverName}`;
              client.destroy();
              upstream.destroy();
              return;
            }
          }
        }
        bytesUp += chunk.length;
        if (!upstream.write(chunk)) client.pause();
      };
      upstream.on('drain', () => client.resume());
      if (head.length > 0) fromClient(head);
      client.on('data', fromClient);
      client.on('end', () => upstream.end());
      upstream.on('data', (chunk: Buffer) => {
        bytesDown += chunk.length;
        if (!client.write(chunk)) upstream.pause();
      });
      client.on('drain', () => upstream.resume());
      upstream.on('end', () => client.end());
    });
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    void handleRequest(req, res);
  });

  async function handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const base = { ts: new Date().toISOString(), kind: 'http' as const };
    let url: URL | null = null;
    try {
      url = new URL(req.url ?? '');
    } catch {
      url = null;
    }
    if (url?.protocol !== 'http:') {
      const body =
        'ptb egress proxy: send absolute http:// URLs (plain HTTP) or use CONNECT (HTTPS); set HTTP_PROXY/HTTPS_PROXY to this address.\n';
      res.writeHead(400, {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
      req.resume();
      record({
        ...base,
        host: url?.hostname ?? String(req.url ?? ''),
        port: 0,
        allowed: false,
        rule: 'bad-request',
        bytesUp: 0,
        bytesDown: 0,
        durationMs: 0,
      });
      return;
    }
    const host = normalizeHost(url.hostname);
    const port = url.port ? Number(url.port) : 80;
    const routed = await route(host, port);
    if (!routed.allowed) {
      const body =
        routed.rule === 'unresolvable'
          ? `ptb egress proxy: cannot resolve ${host}\n`
          : denialBody(host, port, routed.rule);
      res.writeHead(routed.rule === 'unresolvable' ? 502 : 403, {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
      req.resume();
      record({
        ...base,
        host,
        port,
        allowed: false,
        rule: routed.rule,
        bytesUp: 0,
        bytesDown: 0,
        durationMs: Date.now() - started,
        ...(routed.error ? { error: routed.error } : {}),
      });
      return;
    }
    const headers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (!HOP_BY_HOP.has(name) && value !== undefined) headers[name] = value;
    }
    headers.host = url.host;
    let bytesUp = 0;
    let bytesDown = 0;
    let error: string | undefined;
    let logged = false;
    const finish = () => {
      if (logged) return;
      logged = true;
      record({
        ...base,
        host,
        port,
        allowed: true,
        rule: routed.rule,
        bytesUp,
        bytesDown,
        durationMs: Date.now() - started,
        ...(error ? { error } : {}),
      });
    };
    const upstream = httpRequest({
      host: routed.address,
      port: routed.port,
      method: req.method,
      path: `${url.pathname}${url.search}`,
      headers,
      setHost: false,
      timeout: connectTimeoutMs,
    });
    upstream.on('timeout', () => upstream.destroy(new Error('upstream timed out')));
    upstream.on('error', (err) => {
      error ??= err.message;
      if (!res.headersSent) {
        const body = `ptb egress proxy: cannot reach ${host}:${port}: ${err.message}\n`;
        res.writeHead(502, {
          'content-type': 'text/plain; charset=utf-8',
          'content-length': Buffer.byteLength(body),
        });
        res.end(body);
      } else res.destroy();
      finish();
    });
    upstream.on('response', (response) => {
      const out: OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(response.headers)) {
        if (!HOP_BY_HOP.has(name) && value !== undefined) out[name] = value;
      }
      res.writeHead(response.statusCode ?? 502, response.statusMessage, out);
      response.on('data', (chunk: Buffer) => {
        bytesDown += chunk.length;
      });
      // pipeline, not pipe: a client that hangs up also ends the upstream transfer.
      pipeline(response, res).catch((err: Error) => {
        error ??= err.message;
      });
    });
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
      finish();
    });
    req.on('data', (chunk: Buffer) => {
      bytesUp += chunk.length;
    });
    req.pipe(upstream);
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    socket.end('HTTP/1.1 501 Not Implemented\r\nConnection: close\r\n\r\n');
    record({
      ts: new Date().toISOString(),
      host: String(req.headers.host ?? req.url ?? ''),
      port: 0,
      kind: 'http',
      allowed: false,
      rule: 'upgrade-unsupported',
      bytesUp: 0,
      bytesDown: 0,
      durationMs: 0,
    });
  });

  mkdirSync(dirname(options.socketPath), { recursive: true });
  if (existsSync(options.socketPath)) unlinkSync(options.socketPath);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(options.socketPath, 0o600);

  return {
    socketPath: options.socketPath,
    stats: () => ({ total, denied }),
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of openSockets) socket.destroy();
      await closed;
      if (existsSync(options.socketPath)) unlinkSync(options.socketPath);
    },
  };
}
