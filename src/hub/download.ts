import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorMessage, UserError } from '../core/errors.ts';
import { ensureDir } from '../core/paths.ts';

export interface DownloadProgress {
  url: string;
  received: number;
  total: number | null;
}

export interface DownloadOptions {
  /** Sent as a bearer token to huggingface.co only (gated datasets). */
  hfToken?: string;
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
}

function isHuggingFace(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'huggingface.co' || host.endsWith('.huggingface.co') || host.endsWith('.hf.co');
}

/** Stream a URL to `dest` through a temp file; the destination appears only when complete. */
export async function downloadFile(url: string, dest: string, opts: DownloadOptions = {}): Promise<void> {
  const headers: Record<string, string> = { 'user-agent': 'ptb' };
  if (opts.hfToken && isHuggingFace(url)) headers.authorization = `Bearer ${opts.hfToken}`;
  let res: Response;
  try {
    res = await fetch(url, { headers, redirect: 'follow', signal: opts.signal });
  } catch (err) {
    throw new UserError(
      `could not reach ${url}: ${errorMessage(err)}`,
      'Check the network, or import a local copy with `ptb data import`.',
    );
  }
  if (res.status === 401 || res.status === 403) {
    throw new UserError(
      `access to ${url} was refused (HTTP ${res.status})`,
      isHuggingFace(url)
        ? 'This dataset is gated: accept its terms on huggingface.co and set HF_TOKEN to a token with read access.'
        : 'Check that the URL is public.',
    );
  }
  if (!res.ok || !res.body) throw new UserError(`download of ${url} failed with HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length')) || null;
  let received = 0;
  ensureDir(dirname(dest));
  const tmp = `${dest}.part-${process.pid}`;
  const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
  body.on('data', (chunk: Buffer) => {
    received += chunk.length;
    opts.onProgress?.({ url, received, total });
  });
  try {
    await pipeline(body, createWriteStream(tmp));
    renameSync(tmp, dest);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new UserError(`download of ${url} broke off: ${errorMessage(err)}`, 'Run the command again.');
  }
}
