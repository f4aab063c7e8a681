import { createServer } from 'node:http';
import { listenOnLoopback } from './loopbackServer.ts';

/**
 * A stand-in LLM provider on loopback: the selftest points every relay upstream
 * (`PTB_RELAY_UPSTREAM_<PROVIDER>`) here, so no model call of a selftest trial can reach a real
 * provider whatever an agent does. It answers any POST with a short OpenAI-style completion and
 * counts what it was asked (a cheater's call must never get here: the relay refuses decoy keys,
 * the egress proxy refuses provider hosts).
 */
export interface StandInProvider {
  url: string;
  requests: string[];
  close(): Promise<void>;
}

export async function startStandInProvider(): Promise<StandInProvider> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify({
        id: 'chatcmpl-selftest',
        object: 'chat.completion',
        model: 'stand-in',
        choices: [
          { index: 0, message: { role: 'assistant', content: 'stand-in reply' }, finish_reason: 'stop' },
        ],
        usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
      });
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
      });
      res.end(body);
    });
  });
  const { url, close } = await listenOnLoopback(server);
  return { url, requests, close };
}
