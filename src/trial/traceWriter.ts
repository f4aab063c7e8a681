import { closeSync, openSync, writeSync } from 'node:fs';

/**
 * Writes the agent's output as the reference's solve_out.txt: every line prefixed with its UTC
 * arrival time `[YYYY-MM-DDTHH:MM:SSZ] `, flushed line by line (the file is the record if the
 * harness dies), with secrets redacted before anything touches the disk.
 */
export class TimestampedLineWriter {
  private fd: number;
  private partial = '';
  lines = 0;
  lastLineAt: Date | null = null;

  constructor(
    path: string,
    private readonly redact: (text: string) => string = (t) => t,
    private readonly now: () => Date = () => new Date(),
    /** Each line as recorded (redacted, without its time stamp): the live view of a run. */
    private readonly onLine?: (line: string) => void,
  ) {
    this.fd = openSync(path, 'a');
  }

  write(chunk: Buffer | string): void {
    const text = this.partial + chunk.toString();
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    // A runaway line without newlines is cut at 1 MB so memory stays bounded.
    if (this.partial.length > 1 << 20) {
      parts.push(this.partial);
      this.partial = '';
    }
    for (const line of parts) this.writeLine(line);
  }

  private writeLine(line: string): void {
    const at = this.now();
    const stamp = `${at.toISOString().slice(0, 19)}Z`;
    const text = this.redact(line.replace(/\r$/, ''));
    writeSync(this.fd, `[${stamp}] ${text}\n`);
    this.onLine?.(text);
    this.lines++;
    this.lastLineAt = at;
  }

  close(): void {
    if (this.fd < 0) return;
    if (this.partial) this.writeLine(this.partial);
    this.partial = '';
    closeSync(this.fd);
    this.fd = -1;
  }
}

/** `HH:MM:SS` of a duration, as time_taken.txt holds it. */
export function formatHms(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(Math.floor(s / 3600))}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
}

/** Seconds of an `HH:MM:SS` string (time_taken.txt), or null. */
export function parseHms(text: string): number | null {
  const m = /^(\d+):(\d{2}):(\d{2})$/.exec(text.trim());
  return m ? Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) : null;
}
