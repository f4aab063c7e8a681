import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UserError } from '../core/errors.ts';
import { TrialStatusSchema } from '../core/trial.ts';
import type { Db } from '../store/db.ts';
import type { Trial } from '../store/trialRepo.ts';
import { isLoopbackHost, newToken, parseCookies, TOKEN_COOKIE, tokenCookie, tokenMatches } from './auth.ts';
import { computeLeaderboard } from './leaderboard.ts';
import {
  compareData,
  comparePage,
  errorPage,
  evalPage,
  evalsPage,
  homePage,
  LEDGER_PAGE,
  leaderboardPage,
  ledgerPage,
  SAMPLES_PAGE,
  samplesPage,
  schedulerLogPage,
  TRACE_PAGE,
  tracePage,
  trialPage,
  trialsPage,
} from './pages.ts';
import { isLedgerName, MAX_PAGE, type ScheduledView, TrialData } from './trialData.ts';

export interface ViewServerOptions {
  db: Db;
  /** Interface to bind; default 127.0.0.1. Anything but loopback requires the access token. */
  host?: string;
  /** 0 = any free port. */
  port?: number;
  /** Fixed token (tests); otherwise a random one is made when the host is not loopback. */
  token?: string;
  /** Re-index trial directories (written by other hosts); called at start and at most every 2 s on requests. */
  refreshIndex?: () => void;
  /** States of trials run by a batch scheduler (one scheduler query per experiment); asked at most every 10 s. */
  scheduledStates?: () => Map<string, ScheduledView>;
}

const SCHEDULER_INTERVAL_MS = 10_000;

const REFRESH_INTERVAL_MS = 2000;

export interface ViewServer {
  /** Base URL to open (on a wildcard bind, the loopback address). */
  url: string;
  /** The access token; null on loopback. */
  token: string | null;
  /** `url` with `?token=` when a token is needed: what the user opens once. */
  loginUrl: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

/** Content-Security-Policy: this origin only, no inline script or style, no framing. */
export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const STATIC: Record<string, { type: string; file: string }> = {
  'app.js': { type: 'text/javascript; charset=utf-8', file: 'app.js' },
  'app.css': { type: 'text/css; charset=utf-8', file: 'app.css' },
  'favicon.svg': { type: 'image/svg+xml', file: 'favicon.svg' },
};

/** Trial ids are ours (`trial-…`) or imported names; nothing that could be a path. */
const TRIAL_ID = /^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$/;

interface Reply {
  status: number;
  type: string;
  body: string | Buffer;
  headers?: Record<string, string> | undefined;
}

function htmlReply(body: string, status = 200): Reply {
  return { status, type: 'text/html; charset=utf-8', body };
}

function jsonReply(value: unknown, status = 200): Reply {
  return { status, type: 'application/json; charset=utf-8', body: JSON.stringify(value) };
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function loadStatic(): Map<string, { type: string; body: Buffer }> {
  const out = new Map<string, { type: string; body: Buffer }>();
  for (const [name, s] of Object.entries(STATIC)) {
    out.set(name, { type: s.type, body: readFileSync(new URL(`./static/${s.file}`, import.meta.url)) });
  }
  return out;
}

function intParam(url: URL, name: string, fallback: number, min: number, max: number): number {
  const v = url.searchParams.get(name);
  if (v === null || v === '') return fallback;
  if (!/^\d{1,15}$/.test(v)) throw new HttpError(400, `${name} must be a non-negative integer`);
  return Math.min(max, Math.max(min, Number(v)));
}

function strParam(url: URL, name: string, maxLength = 500): string {
  const v = url.searchParams.get(name) ?? '';
  if (v.length > maxLength) throw new HttpError(400, `${name} is longer than ${maxLength} characters`);
  return v.replace(/[\r\n]/g, ' ');
}

/** Start the dashboard. Resolves once it listens; `close()` stops it. */
export async function startViewServer(opts: ViewServerOptions): Promise<ViewServer> {
  const host = opts.host ?? '127.0.0.1';
  const loopback = isLoopbackHost(host);
  const token = loopback ? null : (opts.token ?? newToken());
  const data = new TrialData(opts.db);
  const statics = loadStatic();
  let refreshedAt = 0;
  const refresh = () => {
    if (!opts.refreshIndex || Date.now() - refreshedAt < REFRESH_INTERVAL_MS) return;
    refreshedAt = Date.now();
    opts.refreshIndex();
  };
  refresh();
  if (opts.scheduledStates) {
    const ask = opts.scheduledStates;
    let states = new Map<string, ScheduledView>();
    let askedAt = 0;
    data.scheduled = (id) => {
      if (Date.now() - askedAt >= SCHEDULER_INTERVAL_MS) {
        askedAt = Date.now();
        states = ask();
      }
      return states.get(id);
    };
  }
  let port = 0;

  const security = (res: ServerResponse) => {
    res.setHeader('Content-Security-Policy', CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    res.setHeader('Cache-Control', 'no-store');
  };

  const write = (req: IncomingMessage, res: ServerResponse, reply: Reply): void => {
    const buf = typeof reply.body === 'string' ? Buffer.from(reply.body, 'utf8') : reply.body;
    res.writeHead(reply.status, {
      ...reply.headers,
      'Content-Type': reply.type,
      'Content-Length': buf.length,
    });
    res.end(req.method === 'HEAD' ? undefined : buf);
  };

  /** Loopback binding: refuse other Host names, so a DNS-rebinding page cannot read the dashboard. */
  const hostAllowed = (req: IncomingMessage): boolean => {
    if (!loopback) return true;
    const h = (req.headers.host ?? '').toLowerCase();
    return [
      `127.0.0.1:${port}`,
      `localhost:${port}`,
      `[::1]:${port}`,
      `${host.toLowerCase()}:${port}`,
    ].includes(h);
  };

  const authorised = (req: IncomingMessage): boolean => {
    if (token === null) return true;
    const cookie = parseCookies(req.headers.cookie).get(TOKEN_COOKIE);
    if (tokenMatches(cookie, token)) return true;
    const auth = req.headers.authorization;
    return auth?.startsWith('Bearer ') === true && tokenMatches(auth.slice(7).trim(), token);
  };

  const findTrial = (id: string): Trial => {
    if (!TRIAL_ID.test(id)) throw new HttpError(400, 'invalid trial id');
    const t = data.find(id);
    if (!t) throw new HttpError(404, `no trial ${id}`);
    return t;
  };

  const route = (url: URL): Reply => {
    let parts: string[];
    try {
      parts = url.pathname
        .split('/')
        .filter((p) => p.length > 0)
        .map(decodeURIComponent);
    } catch {
      throw new HttpError(400, 'malformed path');
    }
    if (parts.some((p) => p === '.' || p === '..' || p.includes('/') || p.includes('\\') || p.includes('\0')))
      throw new HttpError(400, 'invalid path');
    const [head, ...rest] = parts;

    if (head === 'static' && rest.length === 1) {
      const s = statics.get(rest[0]!);
      if (!s) throw new HttpError(404, 'not found');
      return { status: 200, type: s.type, body: s.body };
    }
    if (head === 'favicon.ico' && rest.length === 0) {
      const s = statics.get('favicon.svg')!;
      return { status: 200, type: s.type, body: s.body };
    }
    if (head === 'api') return api(url, rest);

    if (head === undefined) return htmlReply(homePage(data, { includeDemo: demoParam(url) }));
    if (head === 'trials' && rest.length === 0) {
      return htmlReply(trialsPage(data, statusFilter(url)));
    }
    if (head === 'evals' && rest.length === 0)
      return htmlReply(evalsPage(data, { includeDemo: demoParam(url) }));
    if (head === 'evals' && rest.length === 1) {
      const id = rest[0]!;
      if (!TRIAL_ID.test(id)) throw new HttpError(400, 'invalid evaluation id');
      const body = evalPage(data, id, {
        offset: intParam(url, 'offset', 0, 0, Number.MAX_SAFE_INTEGER),
        filter: sampleFilter(url),
        q: strParam(url, 'q'),
      });
      if (body === null) throw new HttpError(404, `no evaluation ${id}`);
      return htmlReply(body);
    }
    if (head === 'trials' && rest.length >= 1) {
      const t = findTrial(rest[0]!);
      if (rest.length === 1) return htmlReply(trialPage(data, t));
      if (rest[1] === 'log' && rest.length === 2) return htmlReply(schedulerLogPage(data, t));
      if (rest[1] === 'trace' && rest.length === 2) {
        return htmlReply(
          tracePage(data, t, {
            offset: intParam(url, 'offset', 0, 0, Number.MAX_SAFE_INTEGER),
            q: strParam(url, 'q'),
            from: intParam(url, 'from', 0, 0, Number.MAX_SAFE_INTEGER),
            source: url.searchParams.get('source') === 'events' ? 'events' : 'raw',
          }),
        );
      }
      if (rest[1] === 'ledgers' && rest.length === 3) {
        const name = rest[2]!;
        if (!isLedgerName(name)) throw new HttpError(404, `no ledger named ${name}`);
        return htmlReply(ledgerPage(data, t, name, intParam(url, 'offset', 0, 0, Number.MAX_SAFE_INTEGER)));
      }
      if (rest[1] === 'samples' && rest.length === 2) {
        return htmlReply(
          samplesPage(data, t, {
            offset: intParam(url, 'offset', 0, 0, Number.MAX_SAFE_INTEGER),
            filter: sampleFilter(url),
            q: strParam(url, 'q'),
          }),
        );
      }
    }
    if (head === 'leaderboard' && rest.length === 0)
      return htmlReply(leaderboardPage(data, leaderboardFilter(url)));
    if (head === 'compare' && rest.length === 0) {
      const ids = { a: strParam(url, 'a', 200), b: strParam(url, 'b', 200) };
      const pick = (id: string) => (id && TRIAL_ID.test(id) ? data.find(id) : undefined);
      return htmlReply(comparePage(data, pick(ids.a), pick(ids.b), ids));
    }
    throw new HttpError(404, 'no such page');
  };

  const api = (url: URL, parts: string[]): Reply => {
    const [head, id, sub, name] = parts;
    if (head === 'experiments' && parts.length === 1)
      return jsonReply(data.experiments({ includeDemo: demoParam(url) }));
    if (head === 'trials' && parts.length === 1) return jsonReply(data.summaries(statusFilter(url)));
    if (head === 'leaderboard' && parts.length === 1)
      return jsonReply(computeLeaderboard(data.trials, leaderboardFilter(url)));
    if (head === 'evals' && parts.length === 1)
      return jsonReply(data.evalRuns({ includeDemo: demoParam(url) }));
    if (head === 'evals' && id !== undefined && parts.length <= 3) {
      if (!TRIAL_ID.test(id)) throw new HttpError(400, 'invalid evaluation id');
      const run = data.evalRun(id);
      if (!run) throw new HttpError(404, `no evaluation ${id}`);
      if (parts.length === 2) return jsonReply(data.evalRunSummary(run));
      if (sub === 'samples') {
        const offset = intParam(url, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
        const limit = intParam(url, 'limit', SAMPLES_PAGE, 1, MAX_PAGE);
        return jsonReply(
          data.samplesPageOf(data.evalSamplesFile(run), offset, limit, sampleFilter(url), strParam(url, 'q')),
        );
      }
    }
    if (head === 'trials' && id !== undefined && sub === 'monitor' && parts.length === 3)
      return jsonReply(data.monitorSamples(findTrial(id)));
    if (head === 'compare' && parts.length === 1) {
      const a = findTrial(strParam(url, 'a', 200));
      const b = findTrial(strParam(url, 'b', 200));
      return jsonReply(compareData(data, a, b));
    }
    if (head === 'trials' && id !== undefined) {
      const t = findTrial(id);
      const offset = intParam(url, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
      if (parts.length === 2) return jsonReply(data.detail(t));
      if (sub === 'trajectory' && parts.length === 3) {
        const limit = intParam(url, 'limit', TRACE_PAGE, 1, MAX_PAGE);
        const q = strParam(url, 'q');
        if (url.searchParams.get('source') === 'events') {
          return jsonReply(q ? data.eventsSearch(t, q, offset) : data.eventsPage(t, offset, limit));
        }
        return jsonReply(q ? data.traceSearch(t, q, offset) : data.tracePage(t, offset, limit));
      }
      if (sub === 'ledgers' && parts.length === 4 && name !== undefined) {
        if (!isLedgerName(name)) throw new HttpError(404, `no ledger named ${name}`);
        return jsonReply(data.ledgerPage(t, name, offset, intParam(url, 'limit', LEDGER_PAGE, 1, MAX_PAGE)));
      }
      if (sub === 'samples' && parts.length === 3) {
        const limit = intParam(url, 'limit', SAMPLES_PAGE, 1, MAX_PAGE);
        return jsonReply(data.samplesPage(t, offset, limit, sampleFilter(url), strParam(url, 'q')));
      }
    }
    throw new HttpError(404, 'no such endpoint');
  };

  /** Everything before routing: method, Host, token. Returns the reply to send. */
  const respond = (req: IncomingMessage): Reply => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://view.invalid');
    } catch {
      return { status: 400, type: 'text/plain; charset=utf-8', body: 'bad request' };
    }
    const isApi = url.pathname.startsWith('/api/');
    const fail = (status: number, message: string, headers?: Record<string, string>): Reply => ({
      ...(isApi ? jsonReply({ error: message }, status) : htmlReply(errorPage(status, message), status)),
      headers,
    });
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return fail(405, 'the dashboard is read-only', { Allow: 'GET, HEAD' });
    }
    if (!hostAllowed(req)) {
      return fail(421, 'unexpected Host header: open the dashboard by the address ptb view printed');
    }
    if (token !== null) {
      const given = url.searchParams.get('token');
      if (given !== null) {
        if (!tokenMatches(given, token)) return fail(401, 'wrong access token');
        // Trade the token in the URL for a cookie, and drop it from the address bar.
        url.searchParams.delete('token');
        return {
          status: 303,
          type: 'text/plain; charset=utf-8',
          body: '',
          headers: { 'Set-Cookie': tokenCookie(token), Location: url.pathname + url.search },
        };
      }
      if (!authorised(req)) {
        return fail(
          401,
          'this dashboard needs its access token: open the URL that ptb view printed (it ends in ?token=…)',
        );
      }
    }
    try {
      if (!url.pathname.startsWith('/static/')) refresh();
      return route(url);
    } catch (err) {
      if (err instanceof HttpError) return fail(err.status, err.message);
      if (err instanceof UserError) return fail(400, err.message);
      return fail(500, `internal error: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    security(res);
    write(req, res, respond(req));
  };

  const server = createServer(handle);
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? new UserError(
              `port ${opts.port} on ${host} is already in use`,
              'Pass another --port, or --port 0 for any free one.',
            )
          : err.code === 'EADDRNOTAVAIL'
            ? new UserError(
                `cannot bind ${host}: no such local address`,
                'Pass --host 127.0.0.1 or an address of this machine.',
              )
            : err,
      );
    };
    server.once('error', onError);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  const wildcard = host === '0.0.0.0' || host === '::';
  const shownHost = wildcard ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const url = `http://${shownHost}:${port}/`;
  return {
    url,
    token,
    loginUrl: token ? `${url}?token=${encodeURIComponent(token)}` : url,
    host,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** `demo=1`: the demo's trials, baselines and evaluations are shown too (they are left out otherwise). */
function demoParam(url: URL): boolean {
  return url.searchParams.get('demo') === '1';
}

function statusFilter(url: URL): {
  experiment?: string;
  status?: Trial['status'];
  includeDemo: boolean;
} {
  const experiment = url.searchParams.get('experiment') || undefined;
  const statusText = url.searchParams.get('status') || undefined;
  const includeDemo = demoParam(url);
  if (statusText === undefined) return { experiment, includeDemo };
  const status = TrialStatusSchema.safeParse(statusText);
  if (!status.success) throw new HttpError(400, `unknown status ${statusText}`);
  return { experiment, status: status.data, includeDemo };
}

/** `?experiment=a&experiment=b&demo=1` of the leaderboard (at most 200 names, each ≤ 200 characters). */
function leaderboardFilter(url: URL): { experiments: string[]; includeDemo: boolean } {
  const experiments = url.searchParams.getAll('experiment').filter((e) => e !== '');
  if (experiments.length > 200) throw new HttpError(400, 'at most 200 experiments');
  if (experiments.some((e) => e.length > 200)) throw new HttpError(400, 'experiment name too long');
  return { experiments, includeDemo: demoParam(url) };
}

function sampleFilter(url: URL): 'all' | 'right' | 'wrong' {
  const f = url.searchParams.get('filter');
  if (f === null || f === '' || f === 'all') return 'all';
  if (f === 'right' || f === 'wrong') return f;
  throw new HttpError(400, 'filter must be all, right or wrong');
}
