/**
 * A stand-in Hugging Face Hub on loopback, in the real URL layout and with the headers huggingface_hub
 * relies on, so the real Python client can download from it:
 *   GET  /api/{models|datasets}/{repo}[/revision/{rev}]   repo info (sha, siblings)
 *   GET  /api/{models|datasets}/{repo}/tree/{rev}          file listing (snapshot_download)
 *   HEAD|GET /{repo}/resolve/{rev}/{file}                 small files: 200 with ETag, X-Repo-Commit
 *   HEAD|GET /datasets/{repo}/resolve/{rev}/{file}
 *   large ("LFS") files: 302 to a separate CDN origin with X-Linked-Etag, X-Linked-Size, X-Repo-Commit and
 *   Xet headers (X-Xet-Hash, a Link rel="xet-auth"), as the Hub sends them today.
 * A repo may be gated: without `Authorization: Bearer <token>` it answers 401 like the Hub.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface StandInFile {
  path: string;
  content: Buffer;
  /** Served through the CDN redirect, as the Hub does for LFS/Xet files. */
  large?: boolean;
}

export interface StandInRepo {
  kind: 'model' | 'dataset';
  id: string;
  files: StandInFile[];
  /** Requests without this bearer token get 401 (a gated or private repo). */
  token?: string;
}

export interface SeenRequest {
  server: 'hub' | 'cdn';
  method: string;
  url: string;
  authorization: string | null;
  range: string | null;
}

export interface StandInHfHub {
  /** http://127.0.0.1:PORT of the Hub. */
  url: string;
  /** http://127.0.0.1:PORT of the CDN the large files redirect to. */
  cdnUrl: string;
  /** The commit every repo's `main` points to. */
  commitOf(repoId: string): string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const gitBlobSha = (data: Buffer) =>
  createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}`),
    );
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Serve bytes with Range support (206) as a CDN would. */
function sendBytes(
  req: IncomingMessage,
  res: ServerResponse,
  content: Buffer,
  headers: Record<string, string>,
) {
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  let body = content;
  let status = 200;
  const out: Record<string, string> = { 'accept-ranges': 'bytes', ...headers };
  if (range) {
    const start = Number(range[1]);
    const end = range[2] ? Math.min(Number(range[2]), content.length - 1) : content.length - 1;
    body = content.subarray(start, end + 1);
    status = 206;
    out['content-range'] = `bytes ${start}-${end}/${content.length}`;
  }
  out['content-length'] = String(body.length);
  res.writeHead(status, out);
  res.end(req.method === 'HEAD' ? undefined : body);
}

export async function startStandInHfHub(repos: StandInRepo[]): Promise<StandInHfHub> {
  const commits = new Map(
    repos.map((repo) => [repo.id, sha256(Buffer.from(`commit:${repo.id}`)).slice(0, 40)]),
  );
  const requests: SeenRequest[] = [];
  const seen = (server: 'hub' | 'cdn', req: IncomingMessage) =>
    requests.push({
      server,
      method: req.method ?? '',
      url: req.url ?? '',
      authorization: req.headers.authorization ?? null,
      range: req.headers.range ?? null,
    });
  const findRepo = (kind: string, id: string) => repos.find((repo) => repo.kind === kind && repo.id === id);
  const revisionOk = (repo: StandInRepo, rev: string) => rev === 'main' || rev === commits.get(repo.id);

  const cdn = createServer((req, res) => {
    seen('cdn', req);
    const url = new URL(req.url ?? '/', 'http://cdn');
    const [kind = '', id = '', file = ''] = (url.searchParams.get('f') ?? '').split('|');
    const entry = findRepo(kind, id)?.files.find((candidate) => candidate.path === file);
    if (!entry || url.searchParams.get('sig') !== 'signed') {
      res.writeHead(403).end('bad signature');
      return;
    }
    sendBytes(req, res, entry.content, { 'content-type': 'application/octet-stream' });
  });
  const cdnUrl = await listen(cdn);

  const hub = createServer((req, res) => {
    seen('hub', req);
    const path = decodeURI(new URL(req.url ?? '/', 'http://hub').pathname);
    const api = /^\/api\/(models|datasets)\/(.+?)(?:\/(revision|tree)\/([^/]+))?$/.exec(path);
    const resolve = /^\/(datasets\/)?(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const kind = api ? (api[1] === 'models' ? 'model' : 'dataset') : resolve?.[1] ? 'dataset' : 'model';
    const repo = api ? findRepo(kind, api[2]!) : resolve ? findRepo(kind, resolve[2]!) : undefined;
    if (!repo) {
      sendJson(res, 404, { error: 'Repository not found' }, { 'x-error-code': 'RepositoryNotFound' });
      return;
    }
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
      sendJson(res, 401, { error: 'Access to this repo is restricted.' }, { 'x-error-code': 'GatedRepo' });
      return;
    }
    const commit = commits.get(repo.id)!;
    const rev = decodeURIComponent(api ? (api[4] ?? 'main') : resolve![3]!);
    if (!revisionOk(repo, rev)) {
      sendJson(res, 404, { error: `Invalid rev id: ${rev}` }, { 'x-error-code': 'RevisionNotFound' });
      return;
    }
    if (api?.[3] === 'tree') {
      // One page holding every file (the Hub paginates with a Link header; one page is enough here).
      sendJson(
        res,
        200,
        repo.files.map((file) => ({
          type: 'file',
          path: file.path,
          size: file.content.length,
          oid: gitBlobSha(file.content),
          ...(file.large
            ? { lfs: { oid: sha256(file.content), size: file.content.length, pointerSize: 134 } }
            : {}),
        })),
      );
      return;
    }
    if (api) {
      sendJson(res, 200, {
        id: repo.id,
        sha: commit,
        private: false,
        gated: repo.token ? 'manual' : false,
        siblings: repo.files.map((file) => ({ rfilename: file.path })),
      });
      return;
    }
    const file = repo.files.find((candidate) => candidate.path === resolve![4]);
    if (!file) {
      sendJson(res, 404, { error: 'Entry not found' }, { 'x-error-code': 'EntryNotFound' });
      return;
    }
    const common = { 'x-repo-commit': commit };
    if (!file.large) {
      sendBytes(req, res, file.content, {
        ...common,
        etag: `"${gitBlobSha(file.content)}"`,
        'content-type': 'text/plain',
      });
      return;
    }
    const hash = sha256(file.content);
    const location = `${cdnUrl}/blobs/${hash}?f=${encodeURIComponent(`${repo.kind}|${repo.id}|${file.path}`)}&sig=signed`;
    res.writeHead(302, {
      ...common,
      location,
      'x-linked-etag': `"${hash}"`,
      'x-linked-size': String(file.content.length),
      etag: `"${gitBlobSha(Buffer.from(`pointer ${hash}`))}"`,
      'x-xet-hash': hash,
      link: `<${cdnUrl}/api/xet-read-token/${hash}>; rel="xet-auth", <${cdnUrl}/other>; rel="next"`,
      'content-length': '0',
    });
    res.end();
  });
  const url = await listen(hub);

  return {
    url,
    cdnUrl,
    commitOf: (repoId) => commits.get(repoId)!,
    requests,
    close: async () => {
      await Promise.all([
        new Promise((resolve) => hub.close(resolve)),
        new Promise((resolve) => cdn.close(resolve)),
      ]);
    },
  };
}
