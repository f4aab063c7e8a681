import type { DownloadProgress } from '../hub/download.ts';

/**
 * A one-line progress bar on a TTY; JSON lines elsewhere (CI logs, schedulers), so that long
 * work is visible in both. Always on stderr: stdout stays clean for results and `--json`.
 */
export class ProgressLine {
  private lastDraw = 0;
  private drawn = false;
  private readonly started = Date.now();

  constructor(
    private readonly stream: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly label: string,
  ) {}

  get isTty(): boolean {
    return Boolean(this.stream.isTTY);
  }

  update(done: number, total: number | null, extra = '', force = false): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < (this.isTty ? 100 : 5000) && done !== total) return;
    this.lastDraw = now;
    const elapsed = (now - this.started) / 1000;
    if (this.isTty) {
      const width = 28;
      const frac = total ? Math.min(1, done / total) : 0;
      const bar = total ? '█'.repeat(Math.round(frac * width)).padEnd(width, '░') : '';
      const count = total ? `${done}/${total}` : `${done}`;
      const eta =
        total && done > 0 && done < total ? ` eta ${formatSeconds((elapsed / done) * (total - done))}` : '';
      this.stream.write(`\r\x1b[2K${this.label} ${bar} ${count} ${formatSeconds(elapsed)}${eta} ${extra}`);
      this.drawn = true;
    } else {
      this.stream.write(
        `${JSON.stringify({ progress: this.label, done, total, elapsed_s: Math.round(elapsed), info: extra || undefined })}\n`,
      );
    }
  }

  /** Print a message without breaking the bar. */
  log(message: string): void {
    if (this.isTty && this.drawn) this.stream.write('\r\x1b[2K');
    this.stream.write(`${message}\n`);
  }

  end(): void {
    if (this.isTty && this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}

export function formatSeconds(s: number): string {
  const sec = Math.round(s);
  const h = Math.floor(sec / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const r = sec % 60;
  return h > 0
    ? `${h}h${String(m).padStart(2, '0')}m`
    : m > 0
      ? `${m}m${String(r).padStart(2, '0')}s`
      : `${r}s`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** Download progress callback drawing onto a ProgressLine. */
export function downloadProgress(line: ProgressLine): (p: DownloadProgress) => void {
  return (p) => line.update(p.received, p.total, formatBytes(p.received));
}
