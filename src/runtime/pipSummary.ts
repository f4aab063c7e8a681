/**
 * pip's output condensed into a few progress lines for the person waiting on the first venv build:
 * one line when collecting starts, a heartbeat at most every 10 s (packages so far, megabytes
 * downloaded), one line when installing starts and when it ends, the first retry of an index that
 * does not answer (with what to do), and pip's own ERROR lines. Everything else goes only to the
 * full log file.
 */
export class PipSummary {
  private packages = 0;
  private latest = '';
  private downloadedMb = 0;
  private retries = 0;
  private phase: 'start' | 'collecting' | 'installing' = 'start';
  private lastShown = 0;

  constructor(
    private readonly logPath: string,
    private readonly now: () => number = Date.now,
    private readonly heartbeatMs = 10_000,
  ) {}

  /** The line to show for this line of pip output, if any. */
  line(text: string): string | undefined {
    const shown = this.summarise(text.trim());
    if (shown !== undefined) this.lastShown = this.now();
    return shown;
  }

  private due(): boolean {
    return this.now() - this.lastShown >= this.heartbeatMs;
  }

  private summarise(text: string): string | undefined {
    const pkg = /^(?:Collecting|Processing|Requirement already satisfied:) (\S+)/.exec(text);
    if (pkg) {
      this.packages++;
      this.latest = pkg[1]!
        .split('/')
        .pop()!
        .replace(/-\d.*$/, '');
      if (this.phase === 'start') {
        this.phase = 'collecting';
        return `pip: collecting packages (full log: ${this.logPath})`;
      }
      return this.due() ? `pip: ${this.progressText()}` : undefined;
    }
    const download = /^Downloading \S+ \(([\d.]+) (kB|MB|GB)\)/.exec(text);
    if (download) {
      this.downloadedMb += Number(download[1]) * ({ kB: 1e-3, MB: 1, GB: 1e3 } as const)[download[2] as 'kB'];
      return this.due() ? `pip: ${this.progressText()}` : undefined;
    }
    if (text.startsWith('WARNING: Retrying')) {
      this.retries++;
      if (this.retries === 1) {
        return 'pip: the package index does not answer and pip is retrying; on a machine without internet access set PIP_INDEX_URL (or PTB_PIP_ARGS="--index-url URL") to a mirror';
      }
      return this.due() ? `pip: still retrying (${this.retries} retries so far)` : undefined;
    }
    const installing = /^Installing collected packages: (.*)$/.exec(text);
    if (installing) {
      this.phase = 'installing';
      return `pip: installing ${installing[1]!.split(',').length} packages`;
    }
    const installed = /^Successfully installed (.*)$/.exec(text);
    if (installed) return `pip: installed ${installed[1]!.split(/\s+/).length} packages`;
    if (text.startsWith('ERROR:')) return `pip: ${text.slice(0, 300)}`;
    return undefined;
  }

  private progressText(): string {
    const mb = this.downloadedMb >= 1 ? `, ${Math.round(this.downloadedMb)} MB downloaded` : '';
    return `${this.packages} packages so far (latest ${this.latest}${mb})`;
  }
}
