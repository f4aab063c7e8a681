import { describe, expect, it } from 'vitest';
import { PipSummary } from '../../src/runtime/pipSummary.ts';

/** Lines as pip 24 prints them on these machines (captured from real installs). */
const RETRY =
  "WARNING: Retrying (Retry(total=1, connect=None, read=None, redirect=None, status=None)) after connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f74c75c7e50>: Failed to establish a new connection: [Errno -2] Name or service not known')': /simple/six/";

function feed(lines: string[], stepMs = 100) {
  let t = 0;
  const summary = new PipSummary('/home/u/.ptb/logs/python-env-x.log', () => t);
  const shown: string[] = [];
  for (const line of lines) {
    t += stepMs;
    const s = summary.line(line);
    if (s) shown.push(s);
  }
  return shown;
}

describe('PipSummary', () => {
  it('shows the start, installing and installed, and hides the rest', () => {
    const shown = feed([
      'Looking in indexes: file:///opt/pypi/simple',
      'Looking in links: /opt/wheels',
      "WARNING: Location 'file:///opt/pypi-more/simple/six/' is ignored: it is neither a file nor a directory.",
      'Collecting torch==2.13.0+cpu (from -r python/requirements.txt (line 1))',
      '  Downloading torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl (190.4 MB)',
      'Collecting transformers (from -r python/requirements.txt (line 2))',
      'Processing /opt/pypi/files/six-1.17.0-py2.py3-none-any.whl',
      'Requirement already satisfied: packaging in ./v/lib/python3.11/site-packages (26.3)',
      'Installing collected packages: six, torch, transformers',
      'Successfully installed six-1.17.0 torch-2.13.0+cpu transformers-5.0.0',
    ]);
    expect(shown).toEqual([
      'pip: collecting packages (full log: /home/u/.ptb/logs/python-env-x.log)',
      'pip: installing 3 packages',
      'pip: installed 3 packages',
    ]);
  });

  it('beats at most every 10 s with packages so far and megabytes downloaded', () => {
    const lines = ['Collecting a'];
    for (let i = 0; i < 30; i++)
      lines.push(`Collecting p${i}`, `  Downloading p${i}-1.0-py3-none-any.whl (10.0 MB)`);
    const shown = feed(lines, 1_000); // 61 lines, one a second
    const beats = shown.filter((s) => s.includes('so far'));
    expect(beats.length).toBe(6);
    expect(beats[0]).toBe('pip: 6 packages so far (latest p4, 50 MB downloaded)');
    expect(beats.at(-1)).toBe('pip: 31 packages so far (latest p29, 300 MB downloaded)');
  });

  it('says what to do on the first retry of an unreachable index, then only beats', () => {
    const shown = feed(
      Array.from({ length: 20 }, () => RETRY),
      1_000,
    );
    expect(shown[0]).toMatch(/package index does not answer.*PIP_INDEX_URL/);
    expect(shown.slice(1)).toEqual(['pip: still retrying (11 retries so far)']);
  });

  it("passes pip's ERROR lines through", () => {
    const shown = feed([
      'Looking in indexes: file:///opt/pypi/simple',
      'ERROR: Could not find a version that satisfies the requirement ptb-no-such-package-xyz==1.0 (from versions: none)',
      'ERROR: No matching distribution found for ptb-no-such-package-xyz==1.0',
    ]);
    expect(shown).toHaveLength(2);
    expect(shown[1]).toBe('pip: ERROR: No matching distribution found for ptb-no-such-package-xyz==1.0');
  });
});
