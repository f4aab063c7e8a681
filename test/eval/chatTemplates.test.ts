import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chooseTemplate, resolveTemplate } from '../../src/eval/chatTemplates.ts';
import { AssetCache } from '../../src/hub/assetCache.ts';

function modelDir(name: string, architectures?: string[]): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'ptb-tpl-')), name);
  mkdirSync(dir, { recursive: true });
  if (architectures) writeFileSync(join(dir, 'config.json'), JSON.stringify({ architectures }));
  return dir;
}

describe('chooseTemplate (reference rule: path substring first, then config.json)', () => {
  it('decides by path before config: the "ChatML hack" does not change the official template', () => {
    const dir = modelDir('gsm8k_HuggingFaceTB_SmolLM3-3B-Base_7/final_model', ['Qwen2ForCausalLM']);
    expect(chooseTemplate(dir, false)).toEqual({ name: 'smollm', reason: 'path' });
  });

  it('checks qwen before llama before gemma before smollm in the path', () => {
    expect(chooseTemplate('/r/gemma_qwen/x', false).name).toBe('qwen3');
    expect(chooseTemplate('/r/gemma_llama/x', false).name).toBe('llama3');
    expect(chooseTemplate('/r/smollm-gemma/x', false).name).toBe('gemma3');
  });

  it('uses gemma3_tool_calling for Gemma only when the benchmark uses tools', () => {
    expect(chooseTemplate('google/gemma-3-4b-pt', true).name).toBe('gemma3_tool_calling');
    expect(chooseTemplate('google/gemma-3-4b-pt', false).name).toBe('gemma3');
    expect(chooseTemplate('Qwen/Qwen3-4B-Base', true).name).toBe('qwen3');
  });

  it('falls back to config.json architectures[0] in the order gemma, llama, qwen, smollm', () => {
    expect(chooseTemplate(modelDir('final_model', ['Gemma3ForCausalLM']), false)).toEqual({
      name: 'gemma3',
      reason: 'config',
    });
    expect(chooseTemplate(modelDir('final_model', ['SmolLM3ForCausalLM']), false).name).toBe('smollm');
    expect(chooseTemplate(modelDir('final_model', ['Qwen3ForCausalLM']), false).name).toBe('qwen3');
  });

  it('fails with a hint to pass --template when nothing matches', () => {
    expect(() => chooseTemplate(modelDir('final_model', ['MistralForCausalLM']), false)).toThrow(
      /cannot choose a chat template/,
    );
  });

  it('refuses the llama3 template the reference does not ship, and honours an override', async () => {
    const cache = new AssetCache(mkdtempSync(join(tmpdir(), 'ptb-tpl-cache-')));
    await expect(resolveTemplate('/m/llama-x', false, undefined, cache, { offline: true })).rejects.toThrow(
      /does not ship/,
    );
    const file = join(mkdtempSync(join(tmpdir(), 'ptb-tpl-')), 'chat.jinja');
    writeFileSync(file, '{{ messages }}');
    const t = await resolveTemplate('/m/llama-x', false, file, cache, { offline: true });
    expect(t).toMatchObject({ source: 'override', reason: 'flag', path: file });
    expect(t.sha256).toMatch(/^[0-9a-f]{64}$/);
  });
});
