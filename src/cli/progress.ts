import type { DownloadProgress } from '../hub/download.ts';

/**
 * Progress of long work, always on stderr (stdout stays clean for results and `--json`). On a
 * terminal, a one-line bar redrawn in place with count, rate and ETA; as JSON lines when asked for
 * (`--json`) or when stderr is not a terminal (CI logs, schedulers, pipes), throttled to one line
 * every 5 s so that logs stay readable.
 */
export class ProgressLine {
  private lastDraw = 0;
  private drawn = false;
  private readonly started: number;
  private readonly json: boolean;
  private readonly now: () => number;

  constructor(
    private readonly stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
    private readonly label: string,
    opts: { json?: boolean; now?: () => number } = {},
  ) {
    this.json = Boolean(opts.json) || !stream.isTTY;
    this.now = opts.now ?? Date.now;
    this.started = this.now();
  }

  /** True when drawing a bar in place (a terminal, no `--json`). */
  get isTty(): boolean {
    return !this.json;
  }

  /** Items done of total; `extra` is shown after the bar. */
  update(done: number, total: number | null, extra = '', force = false): void {
    this.draw(done, total, { extra, force, bytes: false });
  }

  /** Bytes done of total: sizes and rate in KiB/MiB/GiB. */
  updateBytes(done: number, total: number | null, force = false): void {
    this.draw(done, total, { extra: '', force, bytes: true });
  }

  private draw(
    done: number,
    total: number | null,
    o: { extra: string; force: boolean; bytes: boolean },
  ): void {
    const { extra, force } = o;
    const now = this.now();
    if (!force && now - this.lastDraw < (this.json ? 5000 : 100) && done !== total) return;
    this.lastDraw = now;
    const elapsed = (now - this.started) / 1000;
    const rate = elapsed > 0 ? done / elapsed : 0;
    const eta = total && done > 0 && done < total ? (total - done) / rate : null;
    if (this.json) {
      this.stream.write(
        `${JSON.stringify({
          progress: this.label,
          done,
          total,
          elapsed_s: Math.round(elapsed),
          [o.bytes ? 'bytes_per_s' : 'rate_per_s']: Math.round(rate * 100) / 100,
          eta_s: eta === null ? undefined : Math.round(eta),
          info: extra || undefined,
        })}\n`,
      );
      return;
    }
    const width = 24;
    const frac = total ? Math.min(1, done / total) : 0;
    const bar = total ? `${'█'.repeat(Math.round(frac * width)).padEnd(width, '░')} ` : '';
    const size = o.bytes ? formatBytes : String;
    const count = total ? `${size(done)}/${size(total)}` : size(done);
    const parts = [
      `${this.label} ${bar}${count}`,
      elapsed >= 1 ? `${o.bytes ? formatBytes(Math.round(rate)) : formatRate(rate)}/s` : '',
      formatSeconds(elapsed),
      eta === null ? '' : `eta ${formatSeconds(eta)}`,
      extra,
    ].filter(Boolean);
    let text = parts.join('  ');
    const columns = this.stream.columns ?? 0;
    if (columns > 10 && text.length >= columns) text = `${text.slice(0, columns - 2)}…`;
    this.stream.write(`\r\x1b[2K${text}`);
    this.drawn = true;
  }

  /** Print a message without breaking the bar. */
  log(message: string): void {
    if (this.drawn) this.stream.write('\r\x1b[2K');
    this.stream.write(`${message}\n`);
  }

  end(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}

function formatRate(perSecond: number): string {
  if (perSecond >= 100) return perSecond.toFixed(0);
  if (perSecond >= 1) return perSecond.toFixed(1);
  return perSecond.toFixed(2);
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
  return (p) => line.updateBytes(p.received, p.total);
}
