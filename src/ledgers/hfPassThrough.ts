/**
 * A logging pass-through for the Hugging Face Hub. Inside the sandbox HF_ENDPOINT points here, so every
 * model and dataset the agent fetches with huggingface_hub, transformers or datasets passes through and
 * lands in the download ledger (kind, repo, revision, file, bytes, status), one DownloadEvent per request.
 *
 * Hub API calls and small files are forwarded as they are. A large file's redirect to a CDN is followed
 * here rather than handed to the client, so its bytes pass through (and are counted against the file)
 * instead of leaving by the egress proxy: HEAD answers 200 with the file's metadata from the redirect,
 * GET streams the CDN's body (Range requests included). Xet headers are removed so clients with hf_xet
 * fall back to these plain HTTP downloads. The harness's HF token, when configured, is added to Hub
 * requests only: it is never sent to the CDN, never returned, never logged.
 */
import { appendFileSync, chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { DownloadEvent } from '../core/trial.ts';

export interface HfPassThroughOptions {
  /** A Unix socket (bridged into the sandbox) or a TCP port on 127.0.0.1. */
  listen: { socketPath: string } | { port: number; host?: string };
  /** The real Hub (default https://huggingface.co). */
  upstream?: string;
  /** The download ledger (JSON lines, appended). */
  ledgerPath: string;
  /** The harness's Hugging Face token, sent to the Hub in place of whatever the client sent. */
  token?: string;
  onEvent?: (event: DownloadEvent) => void;
  /** Give up on an upstream that sends no response headers for this long (default 60 s). */
  timeoutMs?: number;
}

export interface HfPassThrough {
  /** http://127.0.0.1:PORT when listening on TCP, else null. */
  url: string | null;
  socketPath: string | null;
  close(): Promise<void>;
}

export interface HubTarget {
  kind: DownloadEvent['kind'];
  repo: string | null;
  revision: string | null;
  file: string | null;
}

const KIND_OF_PLURAL: Record<string, DownloadEvent['kind']> = {
  models: 'model',
  datasets: 'dataset',
  spaces: 'space',
};
const KIND_OF_PREFIX: Record<string, DownloadEvent['kind']> = { datasets: 'dataset', spaces: 'space' };

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/** What a Hub URL path is about: `/api/{models|datasets|spaces}/{repo}/...` or `/[datasets/]{repo}/resolve/{rev}/{file}`. */
export function classifyHubPath(pathname: string): HubTarget {
  const api =
    /^\/api\/(models|datasets|spaces)\/([^/]+(?:\/[^/]+)?)(?:\/([a-z-]+)(?:\/([^/]+))?(?:\/(.*))?)?$/.exec(
      pathname,
    );
  if (api) {
    const action = api[3];
    const withRevision =
      action && ['revision', 'tree', 'paths-info', 'resolve', 'parquet', 'treesize'].includes(action);
    return {
      kind: KIND_OF_PLURAL[api[1]!]!,
      repo: decode(api[2]!),
      revision: withRevision && api[4] ? decode(api[4]) : null,
      file: withRevision && api[5] ? decode(api[5]) : null,
    };
  }
  const resolve = /^\/(?:(datasets|spaces)\/)?(.+?)\/(?:resolve|raw)\/([^/]+)\/(.+)$/.exec(pathname);
  if (resolve) {
    return {
      kind: resolve[1] ? KIND_OF_PREFIX[resolve[1]]! : 'model',
      repo: decode(resolve[2]!),
      revision: decode(resolve[3]!),
      file: resolve[4]!.split('/').map(decode).join('/'),
    };
  }
  return { kind: 'other', repo: null, revision: null, file: null };
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

/** Headers the client must not see: Xet routes (they would take the download around us) and cookies. */
function isHiddenResponseHeader(name: string): boolean {
  return name.startsWith('x-xet-') || name === 'set-cookie';
}

/** The Link header without Xet relations (`rel="xet-auth"`), or null when nothing else is left. */
function withoutXetLinks(link: string): string | null {
  const kept = link.split(/,(?=\s*<)/).filter((part) => !/rel="?xet-/i.test(part));
  return kept.length > 0 ? kept.join(',').trim() : null;
}

function clientHeaders(headers: IncomingHttpHeaders, token: string | undefined): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!HOP_BY_HOP.has(name) && value !== undefined) out[name] = value;
  }
  if (token) out.authorization = `Bearer ${token}`;
  return out;
}

function responseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (HOP_BY_HOP.has(name) || isHiddenResponseHeader(name) || value === undefined) continue;
    if (name === 'link') {
      const link = withoutXetLinks(Array.isArray(value) ? value.join(', ') : value);
      if (link) out.link = link;
      continue;
    }
    out[name] = value;
  }
  return out;
}

function send(
  url: URL,
  method: string,
  headers: OutgoingHttpHeaders,
  timeoutMs: number,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const requester = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = requester(url, { method, headers, timeout: timeoutMs }, resolve);
    req.on('timeout', () => req.destroy(new Error(`no response from ${url.host} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

const MAX_CDN_HOPS = 5;

export async function startHfPassThrough(options: HfPassThroughOptions): Promise<HfPassThrough> {
  const upstream = new URL(options.upstream ?? 'https://huggingface.co');
  const timeoutMs = options.timeoutMs ?? 60_000;
  mkdirSync(dirname(options.ledgerPath), { recursive: true });
  const record = (event: DownloadEvent) => {
    appendFileSync(options.ledgerPath, `${JSON.stringify(event)}\n`);
    options.onEvent?.(event);
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const incoming = new URL(req.url ?? '/', 'http://pass-through');
    const target = new URL(`${incoming.pathname}${incoming.search}`, upstream);
    const what = classifyHubPath(incoming.pathname);
    let bytes = 0;
    let status = 0;
    let logged = false;
    const finish = () => {
      if (logged) return;
      logged = true;
      record({
        ts: new Date().toISOString(),
        ...what,
        method,
        url: `${incoming.pathname}${incoming.search}`,
        status,
        bytes,
      });
    };
    res.on('close', finish);

    const fail = (code: number, message: string) => {
      status = code;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const body = `ptb Hugging Face pass-through: ${message}\n`;
      res.writeHead(code, {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
    };

    const stream = (response: IncomingMessage, statusCode: number, headers: OutgoingHttpHeaders) => {
      status = statusCode;
      res.writeHead(statusCode, headers);
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      // pipeline, not pipe: a client that hangs up also ends the upstream download.
      pipeline(response, res).catch(() => {});
    };

    // Request bodies (e.g. POST paths-info) are small: read them whole so the request can be replayed.
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);

    let response: IncomingMessage;
    try {
      response = await new Promise<IncomingMessage>((resolve, reject) => {
        const requester = target.protocol === 'https:' ? httpsRequest : httpRequest;
        const headers = clientHeaders(req.headers, options.token);
        headers.host = target.host;
        if (body.length > 0) headers['content-length'] = String(body.length);
        const upstreamReq = requester(target, { method, headers, timeout: timeoutMs }, resolve);
        upstreamReq.on('timeout', () =>
          upstreamReq.destroy(new Error(`the Hub did not answer within ${timeoutMs} ms`)),
        );
        upstreamReq.on('error', reject);
        upstreamReq.end(body);
      });
    } catch (err) {
      fail(502, `cannot reach ${upstream.host}: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }

    const code = response.statusCode ?? 502;
    const location = response.headers.location;
    if (code >= 300 && code < 400 && location) {
      const next = new URL(location, target);
      if (next.host === upstream.host) {
        // A redirect within the Hub (renamed repo): keep the client on the pass-through.
        const headers = responseHeaders(response.headers);
        headers.location = `${next.pathname}${next.search}`;
        response.resume();
        stream(response, code, headers);
        return;
      }
      // A redirect to the CDN: follow it here, keeping the Hub's file metadata.
      const hubHeaders = responseHeaders(response.headers);
      response.resume();
      const metadata: Record<string, string> = {};
      for (const name of ['x-repo-commit', 'x-linked-etag', 'x-linked-size', 'x-error-code']) {
        if (hubHeaders[name] !== undefined) metadata[name] = String(hubHeaders[name]);
      }
      // The client takes the linked ETag (the file's sha256) as the blob's name in its cache.
      if (metadata['x-linked-etag'] !== undefined) metadata.etag = metadata['x-linked-etag'];
      if (method === 'HEAD') {
        const size = metadata['x-linked-size'];
        status = 200;
        res.writeHead(200, { ...metadata, ...(size !== undefined ? { 'content-length': size } : {}) });
        res.end();
        return;
      }
      // The CDN gets no credentials: its URL is signed. Only content negotiation and ranges go along.
      const cdnHeaders: OutgoingHttpHeaders = {};
      for (const name of ['range', 'accept', 'accept-encoding', 'user-agent', 'if-range']) {
        if (req.headers[name] !== undefined) cdnHeaders[name] = req.headers[name];
      }
      let cdnUrl = next;
      for (let hop = 0; hop < MAX_CDN_HOPS; hop++) {
        let cdnResponse: IncomingMessage;
        try {
          cdnResponse = await send(cdnUrl, method, cdnHeaders, timeoutMs);
        } catch (err) {
          fail(
            502,
            `cannot reach the download host ${cdnUrl.host}: ${err instanceof Error ? err.message : String(err)}`,
          );
          return;
        }
        const cdnCode = cdnResponse.statusCode ?? 502;
        if (cdnCode >= 300 && cdnCode < 400 && cdnResponse.headers.location) {
          cdnUrl = new URL(cdnResponse.headers.location, cdnUrl);
          cdnResponse.resume();
          continue;
        }
        const headers = { ...responseHeaders(cdnResponse.headers), ...metadata };
        stream(cdnResponse, cdnCode, headers);
        return;
      }
      fail(508, `too many redirects from the download host for ${incoming.pathname}`);
      return;
    }
    stream(response, code, responseHeaders(response.headers));
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`ptb Hugging Face pass-through: ${err instanceof Error ? err.message : String(err)}\n`);
      } else res.destroy();
    });
  });
  // Multi-gigabyte downloads take long; only header parsing has a deadline.
  server.requestTimeout = 0;

  let socketPath: string | null = null;
  let url: string | null = null;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const ready = () => {
      server.off('error', reject);
      resolve();
    };
    if ('socketPath' in options.listen) {
      socketPath = options.listen.socketPath;
      mkdirSync(dirname(socketPath), { recursive: true });
      if (existsSync(socketPath)) unlinkSync(socketPath);
      server.listen(socketPath, ready);
    } else {
      server.listen(options.listen.port, options.listen.host ?? '127.0.0.1', ready);
    }
  });
  if (socketPath) chmodSync(socketPath, 0o600);
  else {
    const address = server.address() as { port: number; address: string };
    url = `http://${address.address}:${address.port}`;
  }
  return {
    url,
    socketPath,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      if (socketPath && existsSync(socketPath)) unlinkSync(socketPath);
    },
  };
}
