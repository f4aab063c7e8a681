/**
 * How inspect's `multiple_choice` solver reads the model's letter (`parse_answers`): first a
 * strict line `ANSWER: X` (whole line, optional trailing period), else the first `ANSWER: X`
 * anywhere; the captured text, stripped, must be exactly one allowed capital letter. Regexes
 * keep Python's semantics: `re.search` (first match), `(?i)`, Unicode `\s`/`\d`/`\w`, and
 * MULTILINE `^`/`$` that only break at "\n".
 */

const WS =
  '[\\t\\n\\u000b\\u000c\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const LETTERS = '([A-Za-z\\p{Nd} ,]+)';

const STRICT = new RegExp(
  `(?:^|(?<=\\n))ANSWER${WS}*:${WS}*${LETTERS}${WS}*(?:(?=\\n)|(?![\\s\\S])|\\n|\\.)`,
  'iu',
);
const LOOSE = new RegExp(`ANSWER${WS}*:${WS}*${LETTERS}(?:[^\\p{L}\\p{N}_]|$)`, 'iu');

export function answerLetter(index: number): string {
  return String.fromCharCode(65 + index);
}

export interface ParsedAnswer {
  /** The accepted letters (empty when the reply has no usable ANSWER line). */
  letters: string[];
  /** Which rule found the ANSWER text: strict line, loose fallback, or none. */
  rule: 'strict' | 'loose' | 'none';
}

/** `parse_answers(state, multiple_correct=False)` for `numChoices` options. */
export function parseChoiceAnswer(completion: string, numChoices: number): ParsedAnswer {
  let rule: ParsedAnswer['rule'] = 'strict';
  let match = STRICT.exec(completion);
  if (!match) {
    rule = 'loose';
    match = LOOSE.exec(completion);
  }
  if (!match) return { letters: [], rule: 'none' };
  const matched = match[1]!.trim().replace(/\.+$/, '');
  const allowed = Array.from({ length: numChoices }, (_, i) => answerLetter(i));
  return { letters: allowed.includes(matched) ? [matched] : [], rule };
}
