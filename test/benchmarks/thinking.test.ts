import { describe, expect, it } from 'vitest';
import { stripThinkInspect } from '../../src/benchmarks/shared/thinking.ts';

describe('stripThinkInspect', () => {
  it('removes the first closed think block and strips the rest', () => {
    expect(stripThinkInspect('<think>\nwork\n</think>\n\nANSWER: 5')).toBe('ANSWER: 5');
    expect(stripThinkInspect('  <think>a</think>  ok \u2003')).toBe('ok');
    expect(stripThinkInspect('<think signature="x">a</think>ok')).toBe('ok');
  });

  it('finds the block anywhere but only the first one', () => {
    expect(stripThinkInspect('pre <think>a</think> mid <think>b</think> post')).toBe(
      'pre  mid <think>b</think> post',
    );
  });

  it('leaves text without a closed block untouched (no stripping either)', () => {
    expect(stripThinkInspect('<think>never closed ANSWER: 3')).toBe('<think>never closed ANSWER: 3');
    expect(stripThinkInspect('  plain answer  ')).toBe('  plain answer  ');
    expect(stripThinkInspect('only </think> closing')).toBe('only </think> closing');
  });
});
