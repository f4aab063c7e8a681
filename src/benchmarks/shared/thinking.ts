import { pythonStrip } from './pythonText.ts';

/**
 * inspect's reasoning split (`parse_content_with_reasoning`, applied when an assistant message
 * is built from a plain string): the FIRST `<think …>…</think>` block anywhere in the text is cut
 * out and the rest is `str.strip()`-ed. Without a closing tag nothing happens, so an unclosed
 * `<think>` stays in the text the scorer sees.
 */
const FIRST_THINK_BLOCK = /<think[^>]*>[\s\S]*?<\/think>/;

export function stripThinkInspect(text: string): string {
  const match = FIRST_THINK_BLOCK.exec(text);
  if (!match) return text;
  return pythonStrip(text.slice(0, match.index) + text.slice(match.index + match[0].length));
}
