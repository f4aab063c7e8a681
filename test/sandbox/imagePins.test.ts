import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AGENTS } from '../../src/agents/registry.ts';
import { ptbSourceFiles, stageBuildContext } from '../../src/sandbox/imageBuild.ts';
import {
  checkImageFiles,
  IMAGE_FILES,
  IMAGES_DIR,
  imagePins,
  pinsDigest,
  writeImagePins,
} from '../../src/sandbox/imagePins.ts';

const read = (name: string) => readFileSync(join(IMAGES_DIR, name), 'utf8');
const temps: string[] = [];
afterEach(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('image pins', () => {
  it('agree with images/Containerfile, images/ptb-agent.def and images/requirements-agent.txt', () => {
    expect(checkImageFiles()).toEqual([]);
  });

  it('pin the reference’s training stack exactly', () => {
    const requirements = read(IMAGE_FILES.requirements).split('\n');
    for (const line of [
      'vllm==0.11.0',
      'torch==2.8.0',
      'transformers==4.57.3',
      'trl==0.27.2',
      'peft==0.18.1',
      'datasets==4.5.0',
      'accelerate==1.12.0',
    ]) {
      expect(requirements).toContain(line);
    }
    // Every requirement is an exact pin.
    for (const line of requirements.filter((l) => l && !l.startsWith('#')))
      expect(line).toMatch(/^[\w.-]+==[\w.]+$/);
    expect(read(IMAGE_FILES.containerfile)).toContain(
      'ARG BASE_IMAGE=nvidia/cuda:12.9.1-cudnn-devel-ubuntu22.04',
    );
    expect(read(IMAGE_FILES.apptainerDef)).toMatch(/^From: nvidia\/cuda:12\.9\.1-cudnn-devel-ubuntu22\.04$/m);
  });

  it('install every agent CLI at the version of its definition, in both files', () => {
    const pins = imagePins();
    for (const agent of AGENTS) {
      if (!agent.install) continue;
      const spec = `${agent.install.npm}@${agent.install.version}`;
      expect(pins.agentClis).toContainEqual(agent.install);
      expect(read(IMAGE_FILES.containerfile)).toContain(spec);
      expect(read(IMAGE_FILES.apptainerDef)).toContain(spec);
    }
  });

  it('name the image by a digest that changes with any pin', () => {
    const pins = imagePins();
    expect(pinsDigest(pins)).toMatch(/^[0-9a-f]{12}$/);
    expect(pinsDigest({ ...pins, nodeVersion: '20.0.0' })).not.toBe(pinsDigest(pins));
    expect(read(IMAGE_FILES.containerfile)).toContain(`ARG PTB_PINS=${pinsDigest(pins)}`);
  });

  it('catch a hand edit, and `pins --write` puts the files back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-images-'));
    temps.push(dir);
    cpSync(IMAGES_DIR, dir, { recursive: true });
    const containerfile = join(dir, IMAGE_FILES.containerfile);
    writeFileSync(
      containerfile,
      readFileSync(containerfile, 'utf8').replace('ARG UV_VERSION=', 'ARG UV_VERSION=9'),
    );
    const def = join(dir, IMAGE_FILES.apptainerDef);
    writeFileSync(def, readFileSync(def, 'utf8').replace(/^From: .*$/m, 'From: ubuntu:24.04'));
    const requirements = join(dir, IMAGE_FILES.requirements);
    writeFileSync(requirements, readFileSync(requirements, 'utf8').replace('trl==0.27.2', 'trl==0.26.0'));
    expect(checkImageFiles(dir)).toEqual([
      { file: IMAGE_FILES.containerfile, problem: 'its pin block differs from the pins' },
      {
        file: IMAGE_FILES.apptainerDef,
        problem: `its From: is ubuntu:24.04, the pins say ${imagePins().baseImage}`,
      },
      { file: IMAGE_FILES.requirements, problem: 'differs from the Python pins' },
    ]);
    expect(writeImagePins(dir)).toEqual([
      IMAGE_FILES.containerfile,
      IMAGE_FILES.apptainerDef,
      IMAGE_FILES.requirements,
    ]);
    expect(checkImageFiles(dir)).toEqual([]);
    // The rest of each file is untouched.
    for (const name of Object.values(IMAGE_FILES))
      expect(readFileSync(join(dir, name), 'utf8')).toBe(read(name));
    expect(writeImagePins(dir)).toEqual([]);
  });

  it('report missing pin markers', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-images-'));
    temps.push(dir);
    cpSync(IMAGES_DIR, dir, { recursive: true });
    const def = join(dir, IMAGE_FILES.apptainerDef);
    writeFileSync(def, readFileSync(def, 'utf8').replace(/# <<< ptb pins/, '# end'));
    expect(checkImageFiles(dir)).toContainEqual({
      file: IMAGE_FILES.apptainerDef,
      problem: 'its pin block differs from the pins',
    });
    expect(() => writeImagePins(dir)).toThrow(/markers are missing/);
  });
});

describe('the build context', () => {
  it('carries ptb and its agent-facing evaluate.py, without node_modules or caches', () => {
    const files = ptbSourceFiles();
    expect(files).toContain('python/task/evaluate.py');
    expect(files).toContain('bin/ptb.js');
    expect(files).toContain('package-lock.json');
    expect(files).toContain('src/sandbox/bridge/forwarder.mjs');
    expect(files.some((f) => /node_modules|__pycache__|\.pyc$/.test(f))).toBe(false);
    expect(files.some((f) => f.startsWith('test/'))).toBe(false);
  });

  it('stages the recipe at the root, the requirements beside it and ptb under ptb/', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-context-'));
    temps.push(dir);
    stageBuildContext('apptainer', dir);
    expect(readFileSync(join(dir, IMAGE_FILES.apptainerDef), 'utf8')).toBe(read(IMAGE_FILES.apptainerDef));
    expect(existsSync(join(dir, IMAGE_FILES.requirements))).toBe(true);
    expect(existsSync(join(dir, IMAGE_FILES.containerfile))).toBe(false);
    expect(existsSync(join(dir, 'ptb/python/task/evaluate.py'))).toBe(true);
    expect(existsSync(join(dir, 'ptb/node_modules'))).toBe(false);
    // The recipes copy exactly these paths.
    expect(read(IMAGE_FILES.apptainerDef)).toMatch(
      /^\s+requirements-agent\.txt \/opt\/ptb-image\/requirements-agent\.txt$/m,
    );
    expect(read(IMAGE_FILES.apptainerDef)).toMatch(/^\s+ptb \/opt\/ptb$/m);
    expect(read(IMAGE_FILES.containerfile)).toContain('COPY ptb/ /opt/ptb/');
    expect(read(IMAGE_FILES.containerfile)).toContain(
      'COPY requirements-agent.txt /opt/ptb-image/requirements-agent.txt',
    );
  });
});
