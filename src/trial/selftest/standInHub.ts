import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenOnLoopback } from './loopbackServer.ts';

/**
 * A stand-in Hugging Face Hub on loopback for the selftest: the trial's HF pass-through uses it as
 * its upstream (`PTB_HF_UPSTREAM`), so agents download through the real pass-through and the real
 * `huggingface_hub` client, and the download ledger records it, without touching the internet.
 * It serves the URL layout the client uses for small files: repo info, file tree, and
 * `resolve/{rev}/{file}` with ETag and X-Repo-Commit headers (HEAD and GET, with Range).
 */
export interface HubRepo {
  kind: 'model' | 'dataset';
  id: string;
  files: Array<{ path: string; content: Buffer }>;
}

export interface StandInHub {
  url: string;
  /** Requests seen, as `METHOD path`. */
  requests: string[];
  close(): Promise<void>;
}

const sha1Blob = (data: Buffer) =>
  createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

function sendFile(req: IncomingMessage, res: ServerResponse, content: Buffer, commit: string) {
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  let body = content;
  const headers: Record<string, string> = {
    'content-type': 'application/octet-stream',
    'accept-ranges': 'bytes',
    etag: `"${sha1Blob(content)}"`,
    'x-repo-commit': commit,
  };
  let status = 200;
  if (range) {
    const start = Number(range[1]);
    const end = range[2] ? Math.min(Number(range[2]), content.length - 1) : content.length - 1;
    body = content.subarray(start, end + 1);
    headers['content-range'] = `bytes ${start}-${end}/${content.length}`;
    status = 206;
  }
  headers['content-length'] = String(body.length);
  res.writeHead(status, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

export async function startStandInHub(repos: readonly HubRepo[]): Promise<StandInHub> {
  const commitOf = (repo: HubRepo) =>
    createHash('sha256').update(`${repo.kind}:${repo.id}`).digest('hex').slice(0, 40);
  const find = (kind: string, id: string) => repos.find((r) => r.kind === kind && r.id === id);
  const requests: string[] = [];

  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://hub').pathname);
    requests.push(`${req.method} ${path}`);
    const api = /^\/api\/(models|datasets)\/([^/]+\/[^/]+)(?:\/(revision|tree)\/([^/]+)(?:\/(.*))?)?$/.exec(
      path,
    );
    const resolve = /^\/(datasets\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const kind = api ? (api[1] === 'models' ? 'model' : 'dataset') : resolve?.[1] ? 'dataset' : 'model';
    const repo = api ? find(kind, api[2]!) : resolve ? find(kind, resolve[2]!) : undefined;
    if (!repo) {
      json(res, 404, { error: 'Repository not found' }, { 'x-error-code': 'RepositoryNotFound' });
      return;
    }
    const commit = commitOf(repo);
    const rev = api ? (api[4] ?? 'main') : resolve![3]!;
    if (rev !== 'main' && rev !== commit) {
      json(res, 404, { error: `Invalid rev id: ${rev}` }, { 'x-error-code': 'RevisionNotFound' });
      return;
    }
    if (api?.[3] === 'tree') {
      const under = api[5] ? `${api[5].replace(/\/+$/, '')}/` : '';
      json(
        res,
        200,
        repo.files
          .filter((f) => f.path.startsWith(under))
          .map((f) => ({ type: 'file', path: f.path, size: f.content.length, oid: sha1Blob(f.content) })),
      );
      return;
    }
    if (api) {
      json(res, 200, {
        id: repo.id,
        sha: commit,
        private: false,
        gated: false,
        siblings: repo.files.map((f) => ({ rfilename: f.path })),
      });
      return;
    }
    const file = repo.files.find((f) => f.path === resolve![4]);
    if (!file) {
      json(res, 404, { error: 'Entry not found' }, { 'x-error-code': 'EntryNotFound' });
      return;
    }
    sendFile(req, res, file.content, commit);
  });
  const { url, close } = await listenOnLoopback(server);
  return { url, requests, close };
}
