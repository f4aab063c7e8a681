import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { UserError } from '../../core/errors.ts';
import { readTorchZip } from './torchZip.ts';

/**
 * Reading safetensors checkpoints without loading them: a file is an 8-byte little-endian header
 * length N, N bytes of JSON (`{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?}`),
 * then the tensor bytes, offsets relative to the end of the header. A checkpoint is one file, or a
 * directory of shards listed by `model.safetensors.index.json` (`weight_map`: tensor name -> shard).
 */

export const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** Float dtypes whose values the comparison decodes (others are compared byte for byte only). */
export const DECODED_DTYPES = ['BF16', 'F16', 'F32', 'F64'] as const;

export interface TensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  numel: number;
  /** Shard file holding the tensor (absolute path). */
  file: string;
  /** Absolute byte offset of the first element in `file`. */
  offset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  file: string;
  fileSize: number;
  /** Byte offset where tensor data starts (8 + header length). */
  dataStart: number;
  metadata: Record<string, string>;
  tensors: TensorEntry[];
}

export interface Checkpoint {
  /** The path as given (directory, file or index). */
  path: string;
  files: string[];
  /** Tensors by name, in file then offset order. */
  tensors: Map<string, TensorEntry>;
  /** Bytes of tensor data over all shards. */
  dataBytes: number;
  parameters: number;
  dtypes: Record<string, number>;
}

/** Largest header we accept: real ones are well under 1 MB even for thousands of tensors. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

function corrupt(file: string, problem: string): UserError {
  return new UserError(
    `${file}: ${problem}`,
    'the file is not a valid safetensors file (truncated copy or interrupted save?); re-save or re-download it',
  );
}

/** Parse and validate one file's header: every tensor must lie inside the file with the size its dtype and shape imply. */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw new UserError(`cannot open ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  try {
    const fileSize = (await handle.stat()).size;
    if (fileSize < 8) throw corrupt(file, `only ${fileSize} bytes, too short for a safetensors header`);
    const lengthBytes = Buffer.alloc(8);
    await handle.read(lengthBytes, 0, 8, 0);
    const headerLength = lengthBytes.readBigUInt64LE(0);
    if (headerLength > BigInt(Math.min(fileSize - 8, MAX_HEADER_BYTES))) {
      throw corrupt(
        file,
        `header length ${headerLength} does not fit in the file (${fileSize} bytes) or exceeds ${MAX_HEADER_BYTES} bytes`,
      );
    }
    const length = Number(headerLength);
    const headerBytes = Buffer.alloc(length);
    await handle.read(headerBytes, 0, length, 8);
    let json: unknown;
    try {
      json = JSON.parse(headerBytes.toString('utf8'));
    } catch (err) {
      throw corrupt(file, `header is not valid JSON (${(err as Error).message})`);
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      throw corrupt(file, 'header is not a JSON object');
    }
    const dataStart = 8 + length;
    const dataSize = fileSize - dataStart;
    const tensors: TensorEntry[] = [];
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (raw && typeof raw === 'object') metadata = raw as Record<string, string>;
        continue;
      }
      const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const width = typeof info?.dtype === 'string' ? DTYPE_BYTES[info.dtype] : undefined;
      if (width === undefined)
        throw corrupt(file, `tensor ${name} has unknown dtype ${JSON.stringify(info?.dtype)}`);
      const shape = info.shape;
      if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
        throw corrupt(file, `tensor ${name} has an invalid shape ${JSON.stringify(shape)}`);
      }
      const offsets = info.data_offsets;
      if (
        !Array.isArray(offsets) ||
        offsets.length !== 2 ||
        !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
        offsets[0] > offsets[1]
      ) {
        throw corrupt(file, `tensor ${name} has invalid data_offsets ${JSON.stringify(offsets)}`);
      }
      const numel = (shape as number[]).reduce((a, b) => a * b, 1);
      const [begin, end] = offsets as [number, number];
      if (end - begin !== numel * width) {
        throw corrupt(
          file,
          `tensor ${name} (${info.dtype} ${JSON.stringify(shape)}) should take ${numel * width} bytes but data_offsets span ${end - begin}`,
        );
      }
      if (end > dataSize) {
        throw corrupt(
          file,
          `truncated: tensor ${name} ends at data byte ${end} but the file holds only ${dataSize} bytes of data`,
        );
      }
      tensors.push({
        name,
        dtype: info.dtype as string,
        shape: shape as number[],
        numel,
        file,
        offset: dataStart + begin,
        byteLength: end - begin,
      });
    }
    tensors.sort((a, b) => a.offset - b.offset);
    return { file, fileSize, dataStart, metadata, tensors };
  } finally {
    await handle.close();
  }
}

/** Which shard files make up a checkpoint, and (for an index) which tensor each file must hold. */
function resolveShards(path: string): { files: string[]; weightMap: Record<string, string> | null } {
  if (!existsSync(path))
    throw new UserError(`${path} does not exist`, 'pass a model directory or .safetensors file');
  const st = statSync(path);
  if (st.isFile()) {
    if (path.endsWith('.json')) return readIndex(path);
    return { files: [resolve(path)], weightMap: null };
  }
  const entries = readdirSync(path);
  const indexName =
    entries.find((e) => e === 'model.safetensors.index.json') ??
    entries.find((e) => e.endsWith('.safetensors.index.json'));
  if (indexName) return readIndex(join(path, indexName));
  // A PEFT adapter is not a model: its weights are deltas for a base it names.
  const adapterOnly =
    entries.includes('adapter_config.json') &&
    !entries.some((e) => /\.(safetensors|bin)$/.test(e) && !/^adapter_model/.test(e));
  if (adapterOnly) {
    throw new UserError(
      `${path} holds a PEFT adapter (adapter_config.json, adapter_model.*), not full model weights`,
      'merge the adapter into the base model (model.merge_and_unload(); save_pretrained) and submit the merged weights',
    );
  }
  const files = entries
    .filter((e) => e.endsWith('.safetensors') && !e.startsWith('adapter_model'))
    .sort()
    .map((e) => resolve(path, e));
  if (files.length > 0) return { files, weightMap: null };
  // PyTorch pickles (read statically, never unpickled): pytorch_model.bin or its shards.
  const binIndex = entries.find((e) => e.endsWith('.bin.index.json'));
  if (binIndex) return readIndex(join(path, binIndex));
  const bins = entries.filter((e) => /^pytorch_model.*\.bin$/.test(e)).sort();
  if (bins.length > 0) return { files: bins.map((e) => resolve(path, e)), weightMap: null };
  if (
    entries.some((e) => /^adapter_model\.(safetensors|bin)$/.test(e)) ||
    entries.includes('adapter_config.json')
  ) {
    throw new UserError(
      `${path} holds a PEFT adapter (adapter_config.json, adapter_model.*), not full model weights`,
      'merge the adapter into the base model (model.merge_and_unload(); save_pretrained) and submit the merged weights',
    );
  }
  throw new UserError(
    `no .safetensors or pytorch_model*.bin files in ${path}`,
    'pass the directory that holds model.safetensors or its shards',
  );
}

function readIndex(indexPath: string): { files: string[]; weightMap: Record<string, string> } {
  let parsed: { weight_map?: Record<string, string> };
  try {
    parsed = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch (err) {
    throw new UserError(`${indexPath}: not valid JSON (${(err as Error).message})`, 're-save the checkpoint');
  }
  const map = parsed.weight_map;
  if (!map || typeof map !== 'object') {
    throw new UserError(
      `${indexPath}: no weight_map`,
      're-save the checkpoint or pass a shard file directly',
    );
  }
  const dir = dirname(indexPath);
  const weightMap: Record<string, string> = {};
  const files = new Set<string>();
  for (const [name, shard] of Object.entries(map)) {
    const file = resolve(dir, shard);
    weightMap[name] = file;
    files.add(file);
  }
  const missing = [...files].filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new UserError(
      `${indexPath} lists ${files.size} shards; ${missing.length} missing: ${missing
        .map((f) => basename(f))
        .slice(0, 5)
        .join(', ')}`,
      'the checkpoint is incomplete; copy all shards',
    );
  }
  return { files: [...files].sort(), weightMap };
}

/** Tensors of one weight file: safetensors, or a torch.save zip read statically. */
async function tensorsOf(file: string): Promise<TensorEntry[]> {
  if (file.endsWith('.bin') || file.endsWith('.pt') || file.endsWith('.pth')) return readTorchZip(file);
  return (await readSafetensorsHeader(file)).tensors;
}

/** Open a checkpoint (directory, single file, or index): headers of every shard, validated. */
export async function openCheckpoint(path: string): Promise<Checkpoint> {
  const { files, weightMap } = resolveShards(path);
  const tensors = new Map<string, TensorEntry>();
  const dtypes: Record<string, number> = {};
  let dataBytes = 0;
  let parameters = 0;
  for (const file of files) {
    for (const t of await tensorsOf(file)) {
      if (weightMap && weightMap[t.name] !== undefined && weightMap[t.name] !== file) continue; // the index decides
      const seen = tensors.get(t.name);
      if (seen) {
        throw new UserError(
          `tensor ${t.name} is in both ${seen.file} and ${file}`,
          'pass the one file or the index.json that says which to use',
        );
      }
      tensors.set(t.name, t);
      dataBytes += t.byteLength;
      parameters += t.numel;
      dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + t.numel;
    }
  }
  if (weightMap) {
    for (const [name, file] of Object.entries(weightMap)) {
      if (!tensors.has(name)) {
        throw new UserError(
          `the index maps ${name} to ${basename(file)}, but that shard does not contain it`,
          'the checkpoint is inconsistent; re-save it',
        );
      }
    }
  }
  if (tensors.size === 0) throw new UserError(`${path} holds no tensors`, 'pass a model checkpoint');
  return { path, files, tensors, dataBytes, parameters, dtypes };
}
