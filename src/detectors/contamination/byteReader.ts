/**
 * Sequential reads over an async stream of chunks: exact-length reads, skips, and a sub-stream of
 * the next n bytes (a tar member) that the caller may stop reading early.
 */
export class ByteReader {
  private readonly it: AsyncIterator<Uint8Array>;
  private pending: Buffer = Buffer.alloc(0);
  private done = false;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async more(): Promise<boolean> {
    if (this.done) return false;
    const next = await this.it.next();
    if (next.done) {
      this.done = true;
      return false;
    }
    const chunk = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    return true;
  }

  /** Up to n bytes (fewer only at the end of the stream). */
  async read(n: number): Promise<Buffer> {
    while (this.pending.length < n && (await this.more())) {}
    const out = this.pending.subarray(0, n);
    this.pending = this.pending.subarray(out.length);
    return out;
  }

  /** The next n bytes as chunks; `rest()` skips whatever the consumer did not read. */
  take(n: number): { chunks: AsyncIterable<Buffer>; rest(): Promise<void> } {
    let left = n;
    const self = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      while (left > 0) {
        if (self.pending.length === 0 && !(await self.more())) return;
        const out = self.pending.subarray(0, Math.min(left, self.pending.length));
        self.pending = self.pending.subarray(out.length);
        left -= out.length;
        yield out;
      }
    }
    return {
      chunks: chunks(),
      async rest() {
        while (left > 0) {
          if (self.pending.length === 0 && !(await self.more())) return;
          const k = Math.min(left, self.pending.length);
          self.pending = self.pending.subarray(k);
          left -= k;
        }
      },
    };
  }

  /** Stop reading: let the underlying stream clean up. */
  async close(): Promise<void> {
    this.done = true;
    await this.it.return?.();
  }
}
