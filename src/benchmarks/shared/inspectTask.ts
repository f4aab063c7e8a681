import { readFileSync } from 'node:fs';
import { UserError } from '../../core/errors.ts';
import type { Metrics, Sample } from '../../core/schemas.ts';
import type { LoadedAsset, SelectOptions } from '../types.ts';
import { PythonSourceError, pythonAssignedString } from './pythonText.ts';
import { accuracyMetrics } from './stats.ts';

/**
 * Pieces every inspect-based benchmark here shares (GSM8K, AIME 2025, GPQA): reading prompt
 * templates out of pinned upstream sources, Python's `str.format`, inspect's `limit`, and the
 * `{accuracy, stderr}` metrics of `match()`/`choice()`. Prompt templates are module constants of
 * Python files fetched at run time (`MATH_PROMPT_TEMPLATE = """…""".strip()` and the like); their
 * text is never part of ptb.
 */

export const INSPECT_EVALS_REPO = 'UKGovernmentBEIS/inspect_evals';
/** The inspect_evals commit the reference's final-evaluation container installs. */
export const INSPECT_EVALS_COMMIT = '06001a83e6d7c709c2ede0570dce7f1031a0bad8';

/** inspect's `limit`: the first N samples; null or -1 means all (Python slice semantics otherwise). */
export function selectFirst(samples: Sample[], opts: SelectOptions): Sample[] {
  return opts.limit === null || opts.limit === -1 ? samples : samples.slice(0, opts.limit);
}

/** metrics.json of a `match()` or `choice()` task. */
export function aggregateAccuracy(scored: ReadonlyArray<{ score: { value: number } }>): Metrics {
  return accuracyMetrics(scored.map(({ score }) => score.value));
}

/** Value of `NAME = <string literal>[.strip()]` in the fetched source; `{prompt}`-style fields must be present. */
export function readPromptConstant(
  asset: LoadedAsset,
  name: string,
  requiredFields: readonly string[],
): string {
  const source = readFileSync(asset.path, 'utf8');
  let value: string;
  try {
    value = pythonAssignedString(source, name);
  } catch (err) {
    if (!(err instanceof PythonSourceError)) throw err;
    throw new UserError(
      `${asset.provenance.origin}: cannot read the prompt template ${name} (${err.message})`,
      'The prompt source must be the pinned upstream Python file; re-fetch it or check the local override.',
    );
  }
  for (const field of requiredFields) {
    if (!value.includes(`{${field}}`)) {
      throw new UserError(
        `${asset.provenance.origin}: prompt template ${name} has no {${field}} field`,
        'The prompt source must be the pinned upstream Python file; re-fetch it or check the local override.',
      );
    }
  }
  return value;
}

/**
 * Python `str.format` for templates with plain `{name}` fields: `{{`/`}}` are literal braces and
 * a single unmatched brace is an error, as in Python. `keepUnknown` leaves unknown fields as
 * they are (inspect's safe formatter); otherwise an unknown field is an error (KeyError).
 */
export function pythonFormat(
  template: string,
  params: Readonly<Record<string, string>>,
  opts: { keepUnknown?: boolean } = {},
): string {
  let out = '';
  let i = 0;
  while (i < template.length) {
    const c = template[i]!;
    if (c === '{' && template[i + 1] === '{') {
      out += '{';
      i += 2;
    } else if (c === '}' && template[i + 1] === '}') {
      out += '}';
      i += 2;
    } else if (c === '}') {
      throw new Error(`Single '}' encountered in format string at offset ${i}`);
    } else if (c === '{') {
      const close = template.indexOf('}', i + 1);
      if (close < 0) throw new Error(`Single '{' encountered in format string at offset ${i}`);
      const field = template.slice(i + 1, close);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(field)) {
        throw new Error(`unsupported format field {${field}} at offset ${i}`);
      }
      const value = params[field];
      if (value !== undefined) out += value;
      else if (opts.keepUnknown) out += `{${field}}`;
      else throw new Error(`KeyError: '${field}' in format string`);
      i = close + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}
