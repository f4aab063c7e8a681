/**
 * The egress proxy: policy decisions, the ledger line per connection, and (with bwrap) the proxy as the
 * sandbox's only way out. Every upstream is a loopback server this file starts; names like
 * `files.example.test` reach them through the proxy's `resolve` mapping, never through DNS.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type Server as HttpServer,
  request as httpRequest,
} from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type EgressEvent, EgressEventSchema } from '../../src/core/trial.ts';
import {
  addressClass,
  decideEgress,
  type EgressProxy,
  parseTlsServerName,
  proxyEnv,
  startEgressProxy,
} from '../../src/ledgers/egressProxy.ts';
import { hostMatches, providerOfHost } from '../../src/ledgers/providerHosts.ts';
import { runInSandbox } from '../../src/sandbox/bwrap.ts';
import { sandboxAvailable } from '../sandbox/helpers.ts';

vi.setConfig({ testTimeout: 30_000 });

describe('egress policy', () => {
  it('denies provider hosts in open mode and allows the rest', () => {
    const open = { mode: 'open' as const };
    for (const host of [
      'api.anthropic.com',
      'API.OpenAI.com.',
      'generativelanguage.googleapis.com',
      'us-central1-aiplatform.googleapis.com',
      'myres.openai.azure.com',
      'bedrock-runtime.us-east-1.amazonaws.com',
      'openrouter.ai',
      'dashscope-intl.aliyuncs.com',
      'opencode.ai',
      'api.z.ai',
    ]) {
      expect(decideEgress(open, host), host).toEqual({ allowed: false, rule: 'provider-host-denied' });
    }
    for (const host of [
      'huggingface.co',
      'pypi.org',
      'files.pythonhosted.org',
      'github.com',
      'anthropic.com',
    ]) {
      expect(decideEgress(open, host), host).toEqual({ allowed: true, rule: 'open' });
    }
    expect(providerOfHost('api.groq.com')).toBe('groq');
    expect(providerOfHost('example.com')).toBeNull();
  });

  it('allowlist allows only listed hosts (wildcards included) and never a provider; none denies all', () => {
    const policy = {
      mode: 'allowlist' as const,
      allowHosts: ['pypi.org', '*.pythonhosted.org', 'api.openai.com'],
    };
    expect(decideEgress(policy, 'pypi.org')).toEqual({ allowed: true, rule: 'allowlist' });
    expect(decideEgress(policy, 'files.pythonhosted.org')).toEqual({ allowed: true, rule: 'allowlist' });
    expect(decideEgress(policy, 'pythonhosted.org').allowed).toBe(false);
    expect(decideEgress(policy, 'github.com')).toEqual({ allowed: false, rule: 'not-in-allowlist' });
    expect(decideEgress(policy, 'api.openai.com')).toEqual({ allowed: false, rule: 'provider-host-denied' });
    expect(decideEgress({ mode: 'none' }, 'pypi.org')).toEqual({ allowed: false, rule: 'network-none' });
    expect(hostMatches('a.b.example.com', '*.example.com')).toBe(true);
    expect(hostMatches('evil-example.com', '*.example.com')).toBe(false);
  });

  it('classifies addresses the proxy must not reach', () => {
    for (const ip of [
      '127.0.0.1',
      '127.8.8.8',
      '0.0.0.0',
      '169.254.169.254',
      '::1',
      '::',
      'fe80::1',
      '::ffff:127.0.0.1',
    ])
      expect(addressClass(ip), ip).toBe('local');
    for (const ip of ['10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '100.64.0.1', 'fd00::1'])
      expect(addressClass(ip), ip).toBe('private');
    for (const ip of ['1.1.1.1', '172.32.0.1', '8.8.8.8', '2606:4700::1111'])
      expect(addressClass(ip), ip).toBe('public');
  });

  it('sets the proxy variables for every tool, with loopback excluded', () => {
    expect(proxyEnv(3128)).toEqual({
      HTTP_PROXY: 'http://127.0.0.1:3128',
      HTTPS_PROXY: 'http://127.0.0.1:3128',
      http_proxy: 'http://127.0.0.1:3128',
      https_proxy: 'http://127.0.0.1:3128',
      NO_PROXY: '127.0.0.1,localhost,::1',
      no_proxy: '127.0.0.1,localhost,::1',
    });
  });
});

/** The first bytes a real TLS client sends for `serverName` (captured by a plain TCP listener). */
async function clientHelloFor(serverName: string): Promise<Buffer> {
  const server = createServer();
  const captured = new Promise<Buffer>((resolve) => {
    server.on('connection', (socket) => {
      socket.once('data', (data: Buffer) => {
        resolve(data);
        socket.destroy();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const client = tlsConnect({ host: '127.0.0.1', port, servername: serverName, rejectUnauthorized: false });
  client.on('error', () => {});
  const hello = await captured;
  client.destroy();
  server.close();
  return hello;
}

describe('TLS server name', () => {
  it('reads the server name from a real ClientHello and ignores other bytes', async () => {
    expect(parseTlsServerName(await clientHelloFor('api.openai.com'))).toBe('api.openai.com');
    expect(parseTlsServerName(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))).toBeNull();
    expect(parseTlsServerName((await clientHelloFor('example.org')).subarray(0, 60))).toBeNull();
  });
});

/** Send CONNECT over the proxy's Unix socket; resolves with the status line and the open socket. */
function openTunnel(socketPath: string, authority: string) {
  return new Promise<{ status: string; body: string; socket: ReturnType<typeof connect> }>(
    (resolve, reject) => {
      const socket = connect(socketPath);
      let buffered = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        const head = buffered.subarray(0, end).toString();
        const rest = buffered.subarray(end + 4);
        const status = head.split('\r\n')[0]!;
        if (status.includes(' 200 ')) return resolve({ status, body: rest.toString(), socket });
        let body = rest.toString();
        socket.on('data', (more: Buffer) => {
          body += more.toString();
        });
        socket.on('close', () => resolve({ status, body, socket }));
      };
      socket.on('data', onData);
      socket.on('error', reject);
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    },
  );
}

function proxiedGet(socketPath: string, url: string, body?: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const host = url.startsWith('http://') ? new URL(url).host : 'proxy';
    const req = httpRequest({ socketPath, path: url, method: body ? 'POST' : 'GET', headers: { host } });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => {
        text += chunk.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const waitFor = async (check: () => boolean, ms = 3000) => {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
};

describe('egress proxy', () => {
  let dir: string;
  let echo: Server;
  let echoPort = 0;
  let web: HttpServer;
  let webPort = 0;
  let proxy: EgressProxy;
  let ledger: string;
  const events: EgressEvent[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ptb-egress-'));
    chmodSync(dir, 0o755);
    echo = createServer((socket) =>
      socket.on('data', (data) => socket.write(Buffer.concat([Buffer.from('echo:'), data]))),
    );
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    echoPort = (echo.address() as { port: number }).port;
    web = createHttpServer((req, res) => {
      let received = 0;
      req.on('data', (chunk: Buffer) => {
        received += chunk.length;
      });
      req.on('end', () => res.end(`web ${req.method} ${req.url} host=${req.headers.host} got=${received}`));
    });
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    webPort = (web.address() as { port: number }).port;
    ledger = join(dir, 'ledgers', 'egress.jsonl');
    const map: Record<string, number> = {
      'files.example.test': echoPort,
      'plain.example.test': webPort,
      '203.0.113.9': echoPort,
      'closed.example.test': 1,
    };
    proxy = await startEgressProxy({
      socketPath: join(dir, 'egress.sock'),
      policy: { mode: 'open' },
      ledgerPath: ledger,
      resolve: (host) => (map[host] ? { host: '127.0.0.1', port: map[host]! } : undefined),
      lookup: async (host) => {
        if (host === 'sneaky.example.test') return ['127.0.0.1'];
        if (host === 'intranet.example.test') return ['10.0.0.5'];
        throw new Error(`getaddrinfo ENOTFOUND ${host}`);
      },
      onEvent: (event) => events.push(event),
    });
  });

  afterAll(async () => {
    await proxy.close();
    echo.close();
    web.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const ledgerLines = () =>
    readFileSync(ledger, 'utf8')
      .trim()
      .split('\n')
      .map((line) => EgressEventSchema.parse(JSON.parse(line)));

  it('tunnels an allowed CONNECT and logs host, port and the bytes both ways', async () => {
    const before = events.length;
    const tunnel = await openTunnel(proxy.socketPath, 'files.example.test:443');
    expect(tunnel.status).toBe('HTTP/1.1 200 Connection Established');
    const reply = await new Promise<string>((resolve) => {
      tunnel.socket.once('data', (data: Buffer) => resolve(data.toString()));
      tunnel.socket.write('0123456789');
    });
    expect(reply).toBe('echo:0123456789');
    tunnel.socket.end();
    await waitFor(() => events.length > before);
    const event = events.at(-1)!;
    expect(event).toMatchObject({
      host: 'files.example.test',
      port: 443,
      kind: 'connect',
      allowed: true,
      rule: 'open',
      bytesUp: 10,
      bytesDown: 15,
    });
    expect(event.durationMs).toBeGreaterThanOrEqual(0);
    expect(ledgerLines().at(-1)).toEqual(event);
  });

  it('answers 403 with a clear reason for a provider host, and logs the denial', async () => {
    const tunnel = await openTunnel(proxy.socketPath, 'api.anthropic.com:443');
    expect(tunnel.status).toBe('HTTP/1.1 403 Forbidden');
    expect(tunnel.body).toContain('only through the harness model relay');
    await waitFor(() => events.at(-1)?.host === 'api.anthropic.com');
    expect(events.at(-1)).toMatchObject({
      host: 'api.anthropic.com',
      allowed: false,
      rule: 'provider-host-denied',
    });
  });

  it('never connects to the host’s own loopback or a private network', async () => {
    const literal = await openTunnel(proxy.socketPath, `127.0.0.1:${echoPort}`);
    expect(literal.status).toBe('HTTP/1.1 403 Forbidden');
    expect(literal.body).toContain('local-address-denied');
    const viaDns = await openTunnel(proxy.socketPath, `sneaky.example.test:${echoPort}`);
    expect(viaDns.status).toBe('HTTP/1.1 403 Forbidden');
    const intranet = await proxiedGet(proxy.socketPath, 'http://intranet.example.test/');
    expect(intranet.status).toBe(403);
    expect(intranet.body).toContain('private-address-denied');
    const metadata = await proxiedGet(proxy.socketPath, 'http://169.254.169.254/latest/meta-data/');
    expect(metadata.status).toBe(403);
    await waitFor(() => events.at(-1)?.host === '169.254.169.254');
    expect(events.slice(-4).map((event) => event.rule)).toEqual([
      'local-address-denied',
      'local-address-denied',
      'private-address-denied',
      'local-address-denied',
    ]);
  });

  it('cuts a tunnel whose TLS server name is a provider host, whatever CONNECT named', async () => {
    const hello = await clientHelloFor('api.openai.com');
    const tunnel = await openTunnel(proxy.socketPath, '203.0.113.9:443');
    expect(tunnel.status).toBe('HTTP/1.1 200 Connection Established');
    const closed = new Promise<string>((resolve) => {
      let got = '';
      tunnel.socket.on('data', (data: Buffer) => {
        got += data.toString();
      });
      tunnel.socket.on('close', () => resolve(got));
    });
    tunnel.socket.write(hello);
    expect(await closed).toBe(''); // nothing reached the upstream, so nothing came back
    await waitFor(() => events.at(-1)?.host === '203.0.113.9');
    expect(events.at(-1)).toMatchObject({
      allowed: false,
      rule: 'provider-host-denied-by-sni',
      error: 'TLS server name api.openai.com',
      bytesUp: 0,
    });
  });

  it('forwards plain HTTP with the original Host and counts request and response bodies', async () => {
    const reply = await proxiedGet(proxy.socketPath, 'http://plain.example.test/path?q=1', 'x'.repeat(100));
    expect(reply.status).toBe(200);
    expect(reply.body).toBe('web POST /path?q=1 host=plain.example.test got=100');
    await waitFor(() => events.at(-1)?.host === 'plain.example.test');
    expect(events.at(-1)).toMatchObject({
      kind: 'http',
      port: 80,
      allowed: true,
      bytesUp: 100,
      bytesDown: Buffer.byteLength(reply.body),
    });
  });

  it('reports an unreachable upstream as 502 and a request that is not for a proxy as 400', async () => {
    const closed = await openTunnel(proxy.socketPath, 'closed.example.test:443');
    expect(closed.status).toBe('HTTP/1.1 502 Bad Gateway');
    await waitFor(() => events.at(-1)?.host === 'closed.example.test');
    expect(events.at(-1)).toMatchObject({ allowed: true, rule: 'open' });
    expect(events.at(-1)?.error).toMatch(/ECONNREFUSED/);
    const direct = await proxiedGet(proxy.socketPath, '/not-absolute');
    expect(direct.status).toBe(400);
    const unknown = await proxiedGet(proxy.socketPath, 'http://nowhere.example.test/');
    expect(unknown.status).toBe(502);
  });

  it('denies everything under the none policy', async () => {
    const closedLedger = join(dir, 'none.jsonl');
    const none = await startEgressProxy({
      socketPath: join(dir, 'none.sock'),
      policy: { mode: 'none' },
      ledgerPath: closedLedger,
      resolve: () => ({ host: '127.0.0.1', port: echoPort }),
    });
    try {
      const tunnel = await openTunnel(none.socketPath, 'files.example.test:443');
      expect(tunnel.status).toBe('HTTP/1.1 403 Forbidden');
      expect(tunnel.body).toContain('no network access');
      expect(none.stats()).toEqual({ total: 1, denied: 1 });
    } finally {
      await none.close();
    }
  });

  it.skipIf(!sandboxAvailable)(
    'is the sandbox’s only way out: proxied requests work, direct ones fail',
    async () => {
      const port = 23_128;
      const script = [
        'import json, os, socket, urllib.request',
        'out = {}',
        'out["http"] = urllib.request.urlopen("http://plain.example.test/from-sandbox", timeout=5).read().decode()',
        'try:',
        '    urllib.request.urlopen("https://api.anthropic.com/v1/messages", timeout=5)',
        'except OSError as e:',
        '    out["provider"] = str(e)',
        'import http.client',
        `c = http.client.HTTPConnection("127.0.0.1", ${port}, timeout=5); c.set_tunnel("files.example.test", 443)`,
        'c.connect(); c.sock.sendall(b"raw"); out["tunnel"] = c.sock.recv(100).decode()',
        `for key, addr in (("hostLoopback", ("127.0.0.1", ${echoPort})), ("outside", ("192.0.2.1", 443))):`,
        '    s = socket.socket(); s.settimeout(2)',
        '    try:',
        '        s.connect(addr); out[key] = "connected"',
        '    except OSError as e:',
        '        out[key] = type(e).__name__',
        'try:',
        '    socket.getaddrinfo("plain.example.test", 80); out["dns"] = "resolved"',
        'except OSError as e:',
        '    out["dns"] = type(e).__name__',
        'print(json.dumps(out))',
      ].join('\n');
      const result = await runInSandbox({
        argv: ['/usr/bin/python3', '-c', script],
        network: { bridges: [{ listenPort: port, socketPath: proxy.socketPath }] },
        env: proxyEnv(port),
        timeoutMs: 30_000,
      });
      expect(result.stderr.toString()).toBe('');
      const out = JSON.parse(result.stdout.toString()) as Record<string, string>;
      expect(out.http).toBe('web GET /from-sandbox host=plain.example.test got=0');
      expect(out.provider).toContain('403');
      expect(out.tunnel).toBe('echo:raw');
      expect(out.hostLoopback).toBe('ConnectionRefusedError');
      expect(out.outside).toBe('OSError');
      expect(out.dns).toBe('gaierror');
      const hosts = ledgerLines().map((event) => `${event.host}:${event.allowed}`);
      expect(hosts).toEqual(expect.arrayContaining(['plain.example.test:true', 'api.anthropic.com:false']));
    },
  );
});
