/**
 * The one place the agent environment image's versions live. images/Containerfile,
 * images/ptb-agent.def and images/requirements-agent.txt carry them as text (so that a plain
 * `podman build` or `apptainer build` reads them too), inside generated blocks that
 * `ptb image pins --write` rewrites from this file; `ptb image build` and a test refuse files that
 * drifted. The agent CLIs are not listed here: they come from the agent definitions, so the image
 * and `ptb agents` can never disagree about a CLI's version.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENTS } from '../agents/registry.ts';
import { repoRoot } from '../core/paths.ts';

export interface PythonPin {
  name: string;
  version: string;
}

export interface AgentCliPin {
  npm: string;
  version: string;
  bin: string;
}

export interface ImagePins {
  /** CUDA base image, as the reference's agent and evaluation containers. */
  baseImage: string;
  /** Node.js release (official tarball, checked against its SHASUMS256.txt). */
  nodeVersion: string;
  /** uv release (its versioned installer). */
  uvVersion: string;
  /** uv's `--torch-backend`: fixed rather than `auto`, which picks CPU wheels on a build host without a GPU. */
  torchBackend: string;
  /** Exact Python requirements (images/requirements-agent.txt), installed in one resolution. */
  python: readonly PythonPin[];
  /** Built against the installed torch, so installed after it without build isolation. */
  flashAttnVersion: string;
  /** npm packages installed globally: the pinned CLIs of every agent definition. */
  agentClis: readonly AgentCliPin[];
}

/** Pinned CLIs of the agent definitions, one per npm package, in registry order. */
export function agentCliPins(): AgentCliPin[] {
  const byPackage = new Map<string, AgentCliPin>();
  for (const agent of AGENTS) {
    if (!agent.install) continue;
    const seen = byPackage.get(agent.install.npm);
    if (seen && seen.version !== agent.install.version) {
      throw new Error(
        `agent definitions pin ${agent.install.npm} at both ${seen.version} and ${agent.install.version}`,
      );
    }
    byPackage.set(agent.install.npm, { ...agent.install });
  }
  return [...byPackage.values()];
}

/**
 * Python pins: the reference's `vllm_debug` container (its requirements-direct list with vLLM 0.11.0),
 * plus torch and its companions at the versions vLLM 0.11.0 requires, so that nothing is left to the
 * resolver's mood on the day of the build.
 */
const PYTHON_PINS: readonly PythonPin[] = [
  { name: 'vllm', version: '0.11.0' },
  { name: 'torch', version: '2.8.0' },
  { name: 'torchvision', version: '0.23.0' },
  { name: 'torchaudio', version: '2.8.0' },
  { name: 'transformers', version: '4.57.3' },
  { name: 'tokenizers', version: '0.22.2' },
  { name: 'huggingface-hub', version: '0.36.0' },
  { name: 'accelerate', version: '1.12.0' },
  { name: 'datasets', version: '4.5.0' },
  { name: 'peft', version: '0.18.1' },
  { name: 'trl', version: '0.27.2' },
  { name: 'bitsandbytes', version: '0.49.1' },
  { name: 'evaluate', version: '0.4.6' },
  { name: 'lm-eval', version: '0.4.10' },
  { name: 'inspect-ai', version: '0.3.150' },
  { name: 'openai', version: '2.17.0' },
  { name: 'tiktoken', version: '0.12.0' },
  { name: 'pandas', version: '2.2.3' },
  { name: 'scikit-learn', version: '1.7.2' },
  { name: 'matplotlib', version: '3.10.8' },
  { name: 'boto3', version: '1.40.61' },
  { name: 'certifi', version: '2026.1.4' },
  { name: 'shortuuid', version: '1.0.13' },
  { name: 'ninja', version: '1.13.0' },
  { name: 'packaging', version: '26.0' },
];

export function imagePins(): ImagePins {
  return {
    baseImage: 'nvidia/cuda:12.9.1-cudnn-devel-ubuntu22.04',
    nodeVersion: '20.20.2',
    uvVersion: '0.9.0',
    torchBackend: 'cu128',
    python: PYTHON_PINS,
    flashAttnVersion: '2.8.3',
    agentClis: agentCliPins(),
  };
}

/** Short content hash of the pins: names the image (`ptb-agent:<digest>`) and labels it. */
export function pinsDigest(pins: ImagePins = imagePins()): string {
  return createHash('sha256').update(JSON.stringify(pins)).digest('hex').slice(0, 12);
}

export const IMAGES_DIR = join(repoRoot, 'images');
export const IMAGE_FILES = {
  containerfile: 'Containerfile',
  apptainerDef: 'ptb-agent.def',
  requirements: 'requirements-agent.txt',
} as const;

const BLOCK_BEGIN = '# >>> ptb pins: generated from src/sandbox/imagePins.ts by `ptb image pins --write`';
const BLOCK_END = '# <<< ptb pins';

function npmSpecs(pins: ImagePins): string {
  return pins.agentClis.map((cli) => `${cli.npm}@${cli.version}`).join(' ');
}

/** images/requirements-agent.txt, whole. */
export function renderRequirements(pins: ImagePins = imagePins()): string {
  return [
    '# Python packages of the ptb agent image, exact versions. Generated from src/sandbox/imagePins.ts',
    '# by `ptb image pins --write`: edit the pins there, not here.',
    ...pins.python.map((pin) => `${pin.name}==${pin.version}`),
    '',
  ].join('\n');
}

/** The generated block of images/Containerfile (ARGs before FROM, re-declared after it). */
export function renderContainerfilePins(pins: ImagePins = imagePins()): string {
  return [
    BLOCK_BEGIN,
    `ARG BASE_IMAGE=${pins.baseImage}`,
    `ARG NODE_VERSION=${pins.nodeVersion}`,
    `ARG UV_VERSION=${pins.uvVersion}`,
    `ARG TORCH_BACKEND=${pins.torchBackend}`,
    `ARG FLASH_ATTN_VERSION=${pins.flashAttnVersion}`,
    `ARG AGENT_CLIS="${npmSpecs(pins)}"`,
    `ARG PTB_PINS=${pinsDigest(pins)}`,
    BLOCK_END,
  ].join('\n');
}

/** The generated block of images/ptb-agent.def's %post (shell variables). */
export function renderDefPins(pins: ImagePins = imagePins()): string {
  return [
    `    ${BLOCK_BEGIN}`,
    `    NODE_VERSION=${pins.nodeVersion}`,
    `    UV_VERSION=${pins.uvVersion}`,
    `    TORCH_BACKEND=${pins.torchBackend}`,
    `    FLASH_ATTN_VERSION=${pins.flashAttnVersion}`,
    `    AGENT_CLIS="${npmSpecs(pins)}"`,
    `    PTB_PINS=${pinsDigest(pins)}`,
    `    ${BLOCK_END}`,
  ].join('\n');
}

/** Line range of the generated block (marker lines included), or null when a marker is missing. */
function blockRange(lines: readonly string[]): { begin: number; end: number } | null {
  const begin = lines.findIndex((line) => line.trim() === BLOCK_BEGIN);
  const end = lines.findIndex((line, index) => index > begin && line.trim() === BLOCK_END);
  return begin < 0 || end < 0 ? null : { begin, end };
}

/** The generated block of a file (marker lines included, indentation dropped), or null without markers. */
export function extractPinBlock(text: string): string | null {
  const lines = text.split('\n');
  const range = blockRange(lines);
  if (!range) return null;
  return lines
    .slice(range.begin, range.end + 1)
    .map((line) => line.trim())
    .join('\n');
}

function sameBlock(text: string, rendered: string): boolean {
  return extractPinBlock(text) === extractPinBlock(rendered);
}

const DEF_FROM = /^From:[ \t]*(\S+)[ \t]*$/m;

export interface PinDrift {
  file: string;
  problem: string;
}

function readIfPresent(path: string): string | null {
  return existsSync(path) ? readFileSync(path, 'utf8') : null;
}

/** Every way the image files disagree with the pins (empty when they agree). */
export function checkImageFiles(dir: string = IMAGES_DIR, pins: ImagePins = imagePins()): PinDrift[] {
  const drift: PinDrift[] = [];
  const containerfile = readIfPresent(join(dir, IMAGE_FILES.containerfile));
  if (containerfile === null) drift.push({ file: IMAGE_FILES.containerfile, problem: 'missing' });
  else if (!sameBlock(containerfile, renderContainerfilePins(pins))) {
    drift.push({ file: IMAGE_FILES.containerfile, problem: 'its pin block differs from the pins' });
  }
  const def = readIfPresent(join(dir, IMAGE_FILES.apptainerDef));
  if (def === null) drift.push({ file: IMAGE_FILES.apptainerDef, problem: 'missing' });
  else {
    if (!sameBlock(def, renderDefPins(pins))) {
      drift.push({ file: IMAGE_FILES.apptainerDef, problem: 'its pin block differs from the pins' });
    }
    const from = DEF_FROM.exec(def)?.[1];
    if (from !== pins.baseImage) {
      drift.push({
        file: IMAGE_FILES.apptainerDef,
        problem: `its From: is ${from ?? 'missing'}, the pins say ${pins.baseImage}`,
      });
    }
  }
  const requirements = readIfPresent(join(dir, IMAGE_FILES.requirements));
  if (requirements === null) drift.push({ file: IMAGE_FILES.requirements, problem: 'missing' });
  else if (requirements !== renderRequirements(pins)) {
    drift.push({ file: IMAGE_FILES.requirements, problem: 'differs from the Python pins' });
  }
  return drift;
}

function replaceBlock(text: string, block: string): string {
  const lines = text.split('\n');
  const range = blockRange(lines);
  if (!range) throw new Error('the pin block markers are missing');
  lines.splice(range.begin, range.end - range.begin + 1, ...block.split('\n'));
  return lines.join('\n');
}

/** Rewrite the generated parts of the image files from the pins; returns the files that changed. */
export function writeImagePins(dir: string = IMAGES_DIR, pins: ImagePins = imagePins()): string[] {
  const changed: string[] = [];
  const update = (name: string, next: (text: string) => string) => {
    const path = join(dir, name);
    const text = readFileSync(path, 'utf8');
    const updated = next(text);
    if (updated !== text) {
      writeFileSync(path, updated);
      changed.push(name);
    }
  };
  update(IMAGE_FILES.containerfile, (text) => replaceBlock(text, renderContainerfilePins(pins)));
  update(IMAGE_FILES.apptainerDef, (text) =>
    replaceBlock(text, renderDefPins(pins)).replace(DEF_FROM, `From: ${pins.baseImage}`),
  );
  const requirementsPath = join(dir, IMAGE_FILES.requirements);
  const requirements = renderRequirements(pins);
  if (readIfPresent(requirementsPath) !== requirements) {
    writeFileSync(requirementsPath, requirements);
    changed.push(IMAGE_FILES.requirements);
  }
  return changed;
}
