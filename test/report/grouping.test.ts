import { describe, expect, it } from 'vitest';
import {
  matchesPattern,
  parseGroups,
  parseUpstreamMethod,
  seedFromSuffix,
  stripSeedSuffix,
} from '../../src/report/grouping.ts';
import { modelKind, shortModelName, upstreamModelPart } from '../../src/report/models.ts';
import { formatTimeTaken, parseRunFolder, parseTimeTaken } from '../../src/report/upstreamLayout.ts';

describe('seed grouping', () => {
  it('strips the suffixes the reference uses for seeds', () => {
    expect(stripSeedSuffix('claude_claude-opus-4-6_10h_run2')).toBe('claude_claude-opus-4-6_10h');
    expect(stripSeedSuffix('claude_claude-opus-4-6_10h_run1_old_container')).toBe(
      'claude_claude-opus-4-6_10h',
    );
    expect(stripSeedSuffix('codex_gpt-5.2_10h_seed1')).toBe('codex_gpt-5.2_10h');
    expect(stripSeedSuffix('opencode_gemini-3.1-pro_10h_v6_seed1')).toBe('opencode_gemini-3.1-pro_10h');
    expect(stripSeedSuffix('codex_gpt-5.2_10h')).toBe('codex_gpt-5.2_10h');
    expect(stripSeedSuffix('runner_x')).toBe('runner_x');
    expect(seedFromSuffix('a_10h_run3')).toBe(3);
    expect(seedFromSuffix('a_10h_v6_seed1')).toBe(1);
    expect(seedFromSuffix('a_10h')).toBeUndefined();
  });

  it('parses --group flags and refuses malformed or overlapping ones', () => {
    expect([...parseGroups(['opus=a,b', 'gpt=c'])]).toEqual([
      ['a', 'opus'],
      ['b', 'opus'],
      ['c', 'gpt'],
    ]);
    expect(() => parseGroups(['opus'])).toThrow(/NAME=experiment1/);
    expect(() => parseGroups(['x=a', 'y=a'])).toThrow(/two groups/);
  });

  it('reads agent, config, hours and GPUs from upstream method names', () => {
    expect(parseUpstreamMethod('claude_claude-opus-4-6_1m__10h_run1')).toEqual({
      agent: 'claude',
      agentConfig: 'claude-opus-4-6_1m_',
      hours: 10,
      gpus: 1,
      suffix: '_run1',
    });
    expect(parseUpstreamMethod('codex_gpt-5.2_5h_4gpu_seed2')).toMatchObject({
      hours: 5,
      gpus: 4,
      suffix: '_seed2',
    });
    expect(parseUpstreamMethod('baseline_zeroshot')).toBeNull();
  });

  it('matches * patterns only as wildcards', () => {
    expect(matchesPattern('claude_x_10h', 'claude_*')).toBe(true);
    expect(matchesPattern('claude.x', 'claude?x')).toBe(false);
    expect(matchesPattern('a.b', 'a.b')).toBe(true);
    expect(matchesPattern('axb', 'a.b')).toBe(false);
  });
});

describe('upstream names', () => {
  it('splits run folders into exactly four parts with a numeric cluster id', () => {
    expect(parseRunFolder('gsm8k_Qwen_Qwen3-1.7B-Base_16675578')).toEqual({
      benchmark: 'gsm8k',
      org: 'Qwen',
      model: 'Qwen3-1.7B-Base',
      clusterId: 16675578,
    });
    expect(parseRunFolder('gsm8k_not_a_run')).toEqual({ problem: 'cluster id "run" is not a number' });
    expect(parseRunFolder('gsm8k_Qwen_Qwen3-1.7B-Base')).toMatchObject({
      problem: expect.stringContaining('3 parts'),
    });
    expect(parseRunFolder('mmlu_Qwen_Qwen3-1.7B-Base_1')).toMatchObject({
      problem: 'unknown benchmark "mmlu"',
    });
  });

  it('normalises model ids, paths and short names to one cell key', () => {
    expect(shortModelName('Qwen/Qwen3-1.7B-Base')).toBe('Qwen3-1.7B-Base');
    expect(shortModelName('Qwen3-1.7B-Base')).toBe('Qwen3-1.7B-Base');
    expect(shortModelName('/models/tiny_qwen/')).toBe('tiny-qwen');
    expect(upstreamModelPart('HuggingFaceTB/SmolLM3-3B-Base')).toEqual({
      org: 'HuggingFaceTB',
      name: 'SmolLM3-3B-Base',
    });
    expect(upstreamModelPart('/tmp/x/tiny_qwen')).toEqual({ org: 'local', name: 'tiny-qwen' });
  });

  it('knows base and instruct models by name', () => {
    expect(modelKind('google/gemma-3-4b-pt')).toBe('base');
    expect(modelKind('Qwen3-4B-Base')).toBe('base');
    expect(modelKind('google/gemma-3-4b-it')).toBe('instruct');
    expect(modelKind('HuggingFaceTB/SmolLM3-3B')).toBe('instruct');
    expect(modelKind('/tmp/tiny-qwen3')).toBe('other');
  });

  it('reads and writes time_taken.txt', () => {
    expect(parseTimeTaken('09:20:05\n')).toBe(9 * 3600 + 20 * 60 + 5);
    expect(parseTimeTaken('garbage')).toBeNull();
    expect(formatTimeTaken(9 * 3600 + 20 * 60 + 5)).toBe('09:20:05');
    expect(formatTimeTaken(100 * 3600)).toBe('100:00:00');
  });
});
