/** Bounded capture of a child's output streams: keeps the first `cap` bytes, drains and drops the rest. */
import type { Readable } from 'node:stream';

export class CappedSink {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly cap: number) {}

  push(chunk: Buffer): void {
    const room = this.cap - this.size;
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (kept.length < chunk.length) this.truncated = true;
    this.chunks.push(kept);
    this.size += kept.length;
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Resolves when the stream has ended, closed or failed; never rejects. */
export function drainInto(stream: Readable | null | undefined, sink: CappedSink): Promise<void> {
  return new Promise((resolve) => {
    if (!stream) return resolve();
    stream.on('data', (chunk: Buffer) => sink.push(chunk));
    stream.on('error', () => resolve());
    stream.on('close', () => resolve());
    stream.on('end', () => resolve());
  });
}
