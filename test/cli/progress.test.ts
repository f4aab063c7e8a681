import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProgressLine } from '../../src/cli/progress.ts';

class Stream extends Writable {
  text = '';
  constructor(
    readonly isTTY: boolean,
    readonly columns = 120,
  ) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
}

/** A clock the test moves: 10 samples at 2 per second. */
function run(stream: Stream, json?: boolean) {
  let t = 0;
  const line = new ProgressLine(stream, 'gsm8k', { json, now: () => t });
  for (let done = 1; done <= 10; done++) {
    t += 500;
    line.update(done, 40, '', true);
  }
  line.log('attempt 1 failed');
  line.end();
}

describe('ProgressLine', () => {
  it('draws a bar with count, rate and ETA in place on a terminal', () => {
    const tty = new Stream(true);
    run(tty);
    const frames = tty.text.split('\r\x1b[2K').filter(Boolean);
    expect(frames.at(-2)).toBe('gsm8k ██████░░░░░░░░░░░░░░░░░░ 10/40  2.0/s  5s  eta 15s');
    expect(tty.text).toContain('\r\x1b[2Kattempt 1 failed\n'); // a message clears the bar first
    expect(tty.text).not.toContain('{');
  });

  it('writes JSON lines with rate and ETA with --json, even on a terminal, and when not a terminal', () => {
    for (const stream of [new Stream(true), new Stream(false)]) {
      run(stream, stream.isTTY ? true : undefined);
      const lines = stream.text.trim().split('\n');
      expect(lines).toHaveLength(11);
      expect(JSON.parse(lines[9]!)).toEqual({
        progress: 'gsm8k',
        done: 10,
        total: 40,
        elapsed_s: 5,
        rate_per_s: 2,
        eta_s: 15,
      });
      expect(lines[10]).toBe('attempt 1 failed');
      expect(stream.text).not.toContain('\r');
    }
  });

  it('shows sizes and speed in bytes for downloads, cut to the terminal width', () => {
    let t = 0;
    const tty = new Stream(true, 40);
    const line = new ProgressLine(tty, 'gsm8k/test', { now: () => t });
    t = 2000;
    line.updateBytes(4 * 1024 * 1024, 8 * 1024 * 1024, true);
    const frame = tty.text.split('\r\x1b[2K').at(-1)!;
    expect(frame.length).toBeLessThan(40);
    expect(frame.startsWith('gsm8k/test ████████████░░░░░░░░░░░░ 4.')).toBe(true);
    const wide = new Stream(true, 200);
    const again = new ProgressLine(wide, 'gsm8k/test', { now: () => t });
    t = 4000;
    again.updateBytes(4 * 1024 * 1024, 8 * 1024 * 1024, true);
    expect(wide.text).toContain('4.0 MiB/8.0 MiB  2.0 MiB/s');
  });
});
