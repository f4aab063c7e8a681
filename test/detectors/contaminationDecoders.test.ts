import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { findEncodedBlobs } from '../../src/detectors/contamination/blobs.ts';
import { type ContaminationItem, NgramIndex } from '../../src/detectors/contamination/ngramIndex.ts';
import {
  type ContaminationFinding,
  type FileRecord,
  scanPaths,
} from '../../src/detectors/contamination/scanFiles.ts';
import { CorpusWriter, type Gsm8kRow } from './contaminationCorpus.ts';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'ptb-decode-'));
}

const writer = new CorpusWriter(21);
const rows: Gsm8kRow[] = Array.from({ length: 40 }, () => writer.item());
const index = new NgramIndex(
  rows.map((r, i): ContaminationItem => ({ id: String(i), texts: [r.question, r.answer] })),
);
const planted = (i: number) => `Question: ${rows[i]!.question}\nAnswer: ${rows[i]!.answer}`;
const jsonl = (...texts: string[]) => `${texts.map((t) => JSON.stringify({ text: t })).join('\n')}\n`;

async function scan(paths: string[], opts: Parameters<typeof scanPaths>[3] = {}) {
  const findings: ContaminationFinding[] = [];
  const errors: string[] = [];
  const skipped: Array<[string, string]> = [];
  const files: FileRecord[] = [];
  const summary = await scanPaths(
    index,
    paths,
    {
      onFinding: (f) => findings.push(f),
      onError: (s, m) => errors.push(`${s}: ${m}`),
      onSkip: (s, r) => skipped.push([s, r]),
      onFile: (r) => files.push(r),
    },
    { label: (p) => p.slice(p.lastIndexOf('/ws/') + 4), ...opts },
  );
  return { findings, errors, skipped, files, summary };
}

function workspace(): string {
  const dir = join(tmp(), 'ws');
  mkdirSync(dir);
  return dir;
}

const found = (findings: ContaminationFinding[]) =>
  findings.map((f) => [f.source, f.item, f.via.join('>')]).sort((a, b) => (a[0]! < b[0]! ? -1 : 1));

/** A zip archive (stored or deflated members), written the way zipfile does. */
function zip(members: Array<{ name: string; data: Buffer; deflate?: boolean }>): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const name = Buffer.from(m.name);
    const body = m.deflate ? deflateRawSync(m.data) : m.data;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(m.deflate ? 8 : 0, 8);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(m.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(m.deflate ? 8 : 0, 10);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(m.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += 30 + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** A ustar archive. */
function tar(members: Array<{ name: string; data: Buffer }>): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const h = Buffer.alloc(512);
    h.write(m.name, 0);
    h.write('0000644\0', 100);
    h.write(`${m.data.length.toString(8).padStart(11, '0')}\0`, 124);
    h.write('0', 156);
    h.write('ustar\x0000', 257);
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    parts.push(h, m.data, Buffer.alloc((512 - (m.data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

function npy(descr: string, shape: number, data: Buffer): Buffer {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape},), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64));
  header += '\n';
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0, 0]);
  pre.writeUInt16LE(header.length, 8);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), data]);
}

function utf32le(text: string, width: number): Buffer {
  const out = Buffer.alloc(width * 4);
  let k = 0;
  for (const ch of text) out.writeUInt32LE(ch.codePointAt(0)!, 4 * k++);
  return out;
}

const haveTool = (tool: string) => spawnSync(tool, ['--version']).status === 0;

describe('decoding what the agent wrote', () => {
  it('zip members (stored, deflated, a zip inside a zip) and tar archives, plain and gzipped', async () => {
    const ws = workspace();
    const inner = zip([
      { name: 'deep/items.jsonl', data: Buffer.from(jsonl(writer.prose(3), planted(2))), deflate: true },
    ]);
    writeFileSync(
      join(ws, 'bundle.zip'),
      zip([
        { name: 'readme.txt', data: Buffer.from(writer.prose(4)) },
        { name: 'data/train.jsonl', data: Buffer.from(jsonl(writer.prose(3), planted(1))), deflate: true },
        { name: 'nested.zip', data: inner },
      ]),
    );
    const archive = tar([
      { name: 'a/notes.md', data: Buffer.from(writer.prose(5)) },
      { name: 'a/b/data.jsonl', data: Buffer.from(jsonl(planted(3))) },
    ]);
    writeFileSync(join(ws, 'backup.tar'), archive);
    writeFileSync(
      join(ws, 'backup.tar.gz'),
      gzipSync(tar([{ name: 'x.jsonl', data: Buffer.from(jsonl(planted(4))) }])),
    );
    const { findings, errors } = await scan([ws]);
    expect(errors).toEqual([]);
    expect(found(findings)).toEqual([
      ['backup.tar!a/b/data.jsonl', '3', 'tar'],
      ['backup.tar.gz!x.jsonl', '4', 'gzip>tar'],
      ['bundle.zip!data/train.jsonl', '1', 'zip'],
      ['bundle.zip!nested.zip!deep/items.jsonl', '2', 'zip>zip'],
    ]);
    expect(findings.find((f) => f.item === '1')!.location).toEqual({ line: 2 });
  });

  it('zlib streams (a git object, a compressed pickle) and bzip2, xz and zstd files', async () => {
    const ws = workspace();
    mkdirSync(join(ws, '.git', 'objects', 'ab'), { recursive: true });
    const text = planted(5);
    writeFileSync(
      join(ws, '.git', 'objects', 'ab', 'cdef'),
      deflateSync(Buffer.from(`blob ${text.length}\0${text}`)),
    );
    const expected: Array<[string, string, string]> = [['.git/objects/ab/cdef', '5', 'zlib']];
    for (const [tool, ext, item] of [
      ['bzip2', 'bz2', 6],
      ['xz', 'xz', 7],
      ['zstd', 'zst', 8],
    ] as const) {
      if (!haveTool(tool)) continue;
      const out = spawnSync(tool, ['-c'], { input: jsonl(writer.prose(2), planted(item)) });
      writeFileSync(join(ws, `data.jsonl.${ext}`), out.stdout);
      expected.push([`data.jsonl.${ext}`, String(item), tool]);
    }
    const { findings, errors } = await scan([ws]);
    expect(errors).toEqual([]);
    expect(found(findings)).toEqual(expected.sort((a, b) => (a[0] < b[0] ? -1 : 1)));
  });

  it('base64 and hex blobs in code, JSON and logs, wrapped or not, and base64 of gzip', async () => {
    const ws = workspace();
    const b64 = Buffer.from(planted(9)).toString('base64');
    writeFileSync(join(ws, 'train.py'), `import base64\nDATA = "${b64}"\nrows = base64.b64decode(DATA)\n`);
    const wrapped = Buffer.from(planted(10)).toString('base64').replace(/.{76}/g, '$&\n');
    writeFileSync(join(ws, 'run.log'), `step 1 loss 2.3\npayload:\n${wrapped}\nstep 2 loss 2.1\n`);
    const zipped = gzipSync(jsonl(planted(11))).toString('base64');
    writeFileSync(join(ws, 'config.json'), JSON.stringify({ lr: 1e-5, blob: zipped }));
    writeFileSync(join(ws, 'hex.txt'), `data=${Buffer.from(planted(12)).toString('hex')}\n`);
    // Look-alikes that are not blobs: hashes, identifiers, URL-safe tokens of random bytes.
    writeFileSync(
      join(ws, 'lock.txt'),
      `sha256:${'ab12'.repeat(16)}\nname=${'very_long_identifier_'.repeat(5)}\ntok=${Buffer.from(Array.from({ length: 96 }, (_, i) => (i * 97) % 256)).toString('base64url')}\n`,
    );
    const { findings, errors } = await scan([ws]);
    expect(errors).toEqual([]);
    const sources = found(findings).map(([source, item, via]) => [source!.replace(/@\d+$/, '@N'), item, via]);
    expect(sources).toEqual([
      ['config.json!base64@N', '11', 'base64>gzip'],
      ['hex.txt!hex@N', '12', 'hex'],
      ['run.log!base64@N', '10', 'base64'],
      ['train.py!base64@N', '9', 'base64'],
    ]);
    // The finding says where the blob sits in its file.
    expect(findings.find((f) => f.item === '9')!.container).toEqual({ line: 2 });
    expect(findings.find((f) => f.item === '10')!.container).toEqual({ line: 3 });
  });

  it('decodes a blob that straddles the scanner’s 4 MiB chunks', async () => {
    const ws = workspace();
    let prose = '';
    while (prose.length < (4 << 20) - 200) prose += `${writer.prose(6)}\n`;
    writeFileSync(join(ws, 'long.txt'), `${prose}${Buffer.from(planted(28)).toString('base64')}\nthe end\n`);
    const { findings, errors } = await scan([ws]);
    expect(errors).toEqual([]);
    expect(findings.map((f) => [f.item, f.via.join('>')])).toEqual([['28', 'base64']]);
    expect(findings[0]!.container).toEqual({ line: prose.split('\n').length });
  });

  it('finds blobs however a long file is cut into chunks', () => {
    const text = Buffer.from(`${'x '.repeat(100)}${Buffer.from(planted(13)).toString('base64')} tail`);
    const blobs = findEncodedBlobs(text, 0, text.length);
    expect(blobs).toHaveLength(1);
    expect(blobs[0]!.data.toString()).toBe(planted(13));
  });

  it('pickles (strings as plain bytes, never unpickled), numpy text arrays, UTF-16 text', async () => {
    const ws = workspace();
    const py = spawnSync('python3', [
      '-c',
      'import pickle,sys; sys.stdout.buffer.write(pickle.dumps({"rows": [sys.argv[1], sys.argv[2]]}, protocol=4))',
      writer.prose(3),
      planted(14),
    ]);
    expect(py.status).toBe(0);
    writeFileSync(join(ws, 'cache.pkl'), py.stdout);
    const text = rows[15]!.question;
    writeFileSync(
      join(ws, 'questions.npy'),
      npy('<U400', 2, Buffer.concat([utf32le(text, 400), utf32le('short', 400)])),
    );
    writeFileSync(join(ws, 'weights.npy'), npy('<f4', 4, Buffer.alloc(16)));
    writeFileSync(
      join(ws, 'notes.txt'),
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(planted(16), 'utf16le')]),
    );
    const { findings, errors, skipped } = await scan([ws]);
    expect(errors).toEqual([]);
    expect(found(findings).map(([s, i]) => [s, i])).toEqual([
      ['cache.pkl', '14'],
      ['notes.txt', '16'],
      ['questions.npy', '15'],
    ]);
    expect(skipped).toEqual([['weights.npy', 'numeric array (<f4): no text']]);
  });

  it('PyTorch-style zip checkpoints: the pickle is read, tensor storage skipped; byte tensors of safetensors read', async () => {
    const ws = workspace();
    writeFileSync(
      join(ws, 'state.pt'),
      zip([
        { name: 'state/data.pkl', data: Buffer.concat([Buffer.from([0x80, 2]), Buffer.from(planted(17))]) },
        { name: 'state/data/0', data: Buffer.from(planted(18)) },
        { name: 'state/version', data: Buffer.from('3\n') },
      ]),
    );
    const header = Buffer.from(
      JSON.stringify({
        __metadata__: { note: 'ok' },
        w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        secret: {
          dtype: 'U8',
          shape: [Buffer.byteLength(planted(19))],
          data_offsets: [8, 8 + Buffer.byteLength(planted(19))],
        },
      }),
    );
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(
      join(ws, 'model.safetensors'),
      Buffer.concat([length, header, Buffer.alloc(8), Buffer.from(planted(19))]),
    );
    const { findings, errors, skipped } = await scan([ws]);
    expect(errors).toEqual([]);
    expect(found(findings).map(([s, i]) => [s, i])).toEqual([
      ['model.safetensors!secret', '19'],
      ['state.pt!state/data.pkl', '17'],
    ]);
    expect(skipped.map(([s]) => s).sort()).toEqual(['model.safetensors', 'state.pt!*/data/*']);
  });
});

describe('everything is read or reported', () => {
  it('virtual environments, site-packages, caches and VCS folders are scanned like any folder', async () => {
    const ws = workspace();
    mkdirSync(join(ws, '.venv', 'lib', 'python3.11', 'site-packages', 'pkg'), { recursive: true });
    writeFileSync(join(ws, '.venv', 'pyvenv.cfg'), 'home = /usr/bin\n');
    writeFileSync(join(ws, '.venv', 'lib', 'python3.11', 'site-packages', 'pkg', 'data.txt'), planted(20));
    for (const dir of ['__pycache__', 'node_modules', '.cache', 'logs']) {
      mkdirSync(join(ws, dir));
      writeFileSync(
        join(ws, dir, 'x.out'),
        planted(21 + ['__pycache__', 'node_modules', '.cache', 'logs'].indexOf(dir)),
      );
    }
    const { findings, errors } = await scan([ws]);
    expect(errors).toEqual([]);
    expect(found(findings).map(([s, i]) => [s, i])).toEqual([
      ['.cache/x.out', '23'],
      ['.venv/lib/python3.11/site-packages/pkg/data.txt', '20'],
      ['__pycache__/x.out', '21'],
      ['logs/x.out', '24'],
      ['node_modules/x.out', '22'],
    ]);
  });

  it('links out of the scanned folders, pipes and special files are reported, never read', async () => {
    const root = tmp();
    const ws = join(root, 'ws');
    mkdirSync(ws);
    writeFileSync(join(root, 'outside.txt'), planted(25));
    symlinkSync(join(root, 'outside.txt'), join(ws, 'link.txt'));
    symlinkSync('/dev/zero', join(ws, 'zero'));
    writeFileSync(join(ws, 'real.txt'), planted(26));
    symlinkSync(join(ws, 'real.txt'), join(ws, 'inside-link.txt'));
    spawnSync('mkfifo', [join(ws, 'pipe')]);
    const { findings, skipped, files } = await scan([ws]);
    expect(found(findings).map(([s, i]) => [s, i])).toEqual([['inside-link.txt', '26']]);
    expect(Object.fromEntries(skipped)).toMatchObject({
      'link.txt': expect.stringContaining('outside the scanned folders'),
      zero: expect.stringContaining('outside the scanned folders'),
      pipe: 'a named pipe',
    });
    expect(files.filter((f) => f.status === 'skipped')).toHaveLength(3);
  });

  it('a decompression bomb and an over-large file make the scan incomplete, not clean; the scan goes on', async () => {
    const ws = workspace();
    writeFileSync(join(ws, 'bomb.gz'), gzipSync(Buffer.alloc(4 << 20, 0x61)));
    writeFileSync(join(ws, 'big.txt'), `${writer.prose(400)}\n`);
    writeFileSync(join(ws, 'ok.txt'), planted(27));
    writeFileSync(join(ws, 'bad.bz2'), Buffer.from('BZh91AY&SY not really'));
    const { findings, errors, summary } = await scan([ws], {
      maxFileBytes: 20_000,
      maxDecodedBytes: 1 << 20,
    });
    expect(found(findings).map(([s, i]) => [s, i])).toEqual([['ok.txt', '27']]);
    const byFile = Object.fromEntries(errors.map((e) => [e.split(':')[0], e]));
    expect(byFile['bomb.gz']).toMatch(/decompression bomb/);
    expect(byFile['big.txt']).toMatch(/larger than the scan limit/);
    if (haveTool('bzip2')) expect(byFile['bad.bz2']).toMatch(/bzip2/);
    expect(summary.errors).toBeGreaterThanOrEqual(2);
  });
});
