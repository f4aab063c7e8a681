/**
 * How the reference turns a HumanEval reply into a program to run: inspect_evals' `find_code` and the
 * verification program of its `verify()` scorer (inspect_evals @ 06001a83, `humaneval/humaneval.py`).
 */

/** The fields of a HumanEval record the verification program needs. */
export interface HumanEvalProgramParts {
  prompt: string;
  test: string;
  entry_point: string;
}

// inspect_evals runs two `re.findall` passes and concatenates them: every ```python block first, then
// every bare ``` block. "First block" therefore means the first python-tagged block when any exists,
// else the first untagged one. Other tags (```py, ```Python) match neither pattern.
const PYTHON_FENCE = /```python\n([\s\S]*?)```/g;
const BARE_FENCE = /```\n([\s\S]*?)```/g;

/** The fenced block inspect_evals would pick, or null when neither fence pattern matches. */
export function firstFencedBlock(reply: string): string | null {
  const matches = [
    ...Array.from(reply.matchAll(PYTHON_FENCE), (m) => m[1]!),
    ...Array.from(reply.matchAll(BARE_FENCE), (m) => m[1]!),
  ];
  return matches[0] ?? null;
}

/**
 * inspect_evals' `extract_function_body`: drop everything up to and including the first `:\n` that is
 * followed by four spaces (the restated signature), i.e. `code[code.find(":\n    ") + 2:]`. Kept
 * faithfully, including its quirk: without that marker `find` gives -1, so the first character is lost.
 */
export function removeSignature(code: string): string {
  return code.slice(code.indexOf(':\n    ') + 2);
}

/**
 * The code inspect_evals appends to the prompt: the function body of the first fenced block (see
 * firstFencedBlock and removeSignature) or, when there is no fenced block, the whole reply unchanged.
 * The caller strips think blocks first, as inspect does before the scorer sees the completion.
 */
export function extractCode(reply: string): string {
  const block = firstFencedBlock(reply);
  return block === null ? reply : removeSignature(block);
}

/**
 * The verification program exactly as inspect_evals joins it: prompt + code + "\n" + test + "\n" +
 * `check(<entry_point>)`, with no trailing newline. The runner adds its own completion proof.
 */
export function buildHumanEvalProgram(record: HumanEvalProgramParts, code: string): string {
  return [record.prompt, code, '\n', record.test, '\n', `check(${record.entry_point})`].join('');
}
