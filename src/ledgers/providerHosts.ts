/**
 * Hosts that serve LLM inference. Under the default egress policy the agent reaches none of them
 * directly: its own model calls go through the harness relay (which meters and budgets them), and a
 * direct call to another model would be an unmetered, unaudited helper. `*.` entries match any
 * subdomain (not the bare domain).
 */

export interface ProviderHost {
  host: string;
  provider: string;
}

export const PROVIDER_HOSTS: readonly ProviderHost[] = [
  { host: 'api.anthropic.com', provider: 'anthropic' },
  { host: 'api.openai.com', provider: 'openai' },
  // Codex CLI with a ChatGPT subscription sends its model calls here (backend-api/codex).
  { host: 'chatgpt.com', provider: 'openai' },
  { host: '*.openai.azure.com', provider: 'azure-openai' },
  { host: '*.services.ai.azure.com', provider: 'azure-ai' },
  { host: 'generativelanguage.googleapis.com', provider: 'gemini' },
  { host: 'aiplatform.googleapis.com', provider: 'vertex-ai' },
  { host: '*-aiplatform.googleapis.com', provider: 'vertex-ai' },
  // Gemini CLI signed in with a Google account.
  { host: 'cloudcode-pa.googleapis.com', provider: 'gemini' },
  { host: 'opencode.ai', provider: 'opencode' },
  { host: 'api.z.ai', provider: 'zai' },
  { host: 'open.bigmodel.cn', provider: 'zai' },
  { host: 'dashscope.aliyuncs.com', provider: 'dashscope' },
  { host: 'dashscope-intl.aliyuncs.com', provider: 'dashscope' },
  { host: 'dashscope-us.aliyuncs.com', provider: 'dashscope' },
  { host: 'openrouter.ai', provider: 'openrouter' },
  { host: 'api.mistral.ai', provider: 'mistral' },
  { host: 'codestral.mistral.ai', provider: 'mistral' },
  { host: 'api.together.xyz', provider: 'together' },
  { host: 'api.together.ai', provider: 'together' },
  { host: 'api.groq.com', provider: 'groq' },
  { host: 'api.deepseek.com', provider: 'deepseek' },
  { host: 'api.fireworks.ai', provider: 'fireworks' },
  { host: 'api.x.ai', provider: 'xai' },
  { host: 'api.cohere.ai', provider: 'cohere' },
  { host: 'api.cohere.com', provider: 'cohere' },
  { host: 'api.perplexity.ai', provider: 'perplexity' },
  { host: 'api.moonshot.ai', provider: 'moonshot' },
  { host: 'api.moonshot.cn', provider: 'moonshot' },
  { host: 'api.minimax.io', provider: 'minimax' },
  { host: 'api.minimaxi.com', provider: 'minimax' },
  { host: 'api.cerebras.ai', provider: 'cerebras' },
  { host: 'api.sambanova.ai', provider: 'sambanova' },
  { host: 'api.deepinfra.com', provider: 'deepinfra' },
  { host: 'api.hyperbolic.xyz', provider: 'hyperbolic' },
  { host: 'api.novita.ai', provider: 'novita' },
  { host: 'api.siliconflow.cn', provider: 'siliconflow' },
  { host: 'api.siliconflow.com', provider: 'siliconflow' },
  { host: 'api.replicate.com', provider: 'replicate' },
  { host: 'api.ai21.com', provider: 'ai21' },
  { host: 'integrate.api.nvidia.com', provider: 'nvidia-nim' },
  { host: 'api.lambda.ai', provider: 'lambda' },
  { host: 'api.stepfun.com', provider: 'stepfun' },
  { host: 'qianfan.baidubce.com', provider: 'baidu' },
  { host: 'ark.cn-beijing.volces.com', provider: 'volcengine' },
  { host: 'api.lingyiwanwu.com', provider: '01ai' },
  // Hugging Face's inference routes (LLM APIs); downloads from huggingface.co stay open.
  { host: 'router.huggingface.co', provider: 'huggingface-inference' },
  { host: 'api-inference.huggingface.co', provider: 'huggingface-inference' },
  { host: '*.endpoints.huggingface.cloud', provider: 'huggingface-inference' },
  { host: 'bedrock-runtime.*.amazonaws.com', provider: 'bedrock' },
];

/** Every provider host pattern, for the egress policy's deny list. */
export const PROVIDER_HOST_PATTERNS: readonly string[] = PROVIDER_HOSTS.map((entry) => entry.host);

/** A host name as compared: lower case, no trailing dot, no IPv6 brackets. */
export function normalizeHost(host: string): string {
  return host
    .trim()
    .toLowerCase()
    .replace(/\.$/, '')
    .replace(/^\[(.*)\]$/, '$1');
}

/**
 * Whether `host` matches `pattern`: exact, or with `*` standing for one or more characters of a
 * single label (`*.example.com`, `*-aiplatform.googleapis.com`, `bedrock-runtime.*.amazonaws.com`).
 */
export function hostMatches(host: string, pattern: string): boolean {
  const name = normalizeHost(host);
  const wanted = normalizeHost(pattern);
  if (!wanted.includes('*')) return name === wanted;
  const regex = new RegExp(
    `^${wanted
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('[^.]+')}$`,
  );
  // `*.example.com` also covers deeper subdomains (`a.b.example.com`).
  if (wanted.startsWith('*.')) return regex.test(name) || name.endsWith(wanted.slice(1));
  return regex.test(name);
}

/** The provider a host belongs to, or null. */
export function providerOfHost(host: string): string | null {
  return PROVIDER_HOSTS.find((entry) => hostMatches(host, entry.host))?.provider ?? null;
}
