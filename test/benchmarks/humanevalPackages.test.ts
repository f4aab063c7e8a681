import { describe, expect, it } from 'vitest';
import { humanevalBenchmark, scoreHumanEvalReply } from '../../src/benchmarks/humaneval/index.ts';
import { scoringDeps } from '../../src/eval/scoringDeps.ts';
import { isBwrapAvailable } from '../../src/sandbox/bwrap.ts';
import { SandboxedPythonRunner } from '../../src/sandbox/pythonRunner.ts';
import { testCodePython, testHome, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

/**
 * HumanEval answers run with the packages of the reference's eval image (numpy, pandas, scipy,
 * scikit-learn, matplotlib, sympy), inside the code sandbox: an answer that imports numpy passes in
 * ptb as it does in the reference.
 */

const record = {
  prompt:
    'def column_means(rows):\n    """Mean of each column of a list of equal-length rows, as floats."""\n',
  test: 'def check(candidate):\n    assert candidate([[1, 2], [3, 4]]) == [2.0, 3.0]\n    assert candidate([[0, 0, 9]]) == [0.0, 0.0, 9.0]\n',
  entry_point: 'column_means',
};
const numpyAnswer =
  '```python\ndef column_means(rows):\n    import numpy as np\n    return [float(x) for x in np.asarray(rows, dtype=float).mean(axis=0)]\n```';
const pandasAnswer =
  '```python\ndef column_means(rows):\n    import pandas as pd\n    return [float(x) for x in pd.DataFrame(rows).mean(axis=0)]\n```';
const scipyAnswer =
  '```python\ndef column_means(rows):\n    from scipy import stats\n    import sklearn, matplotlib, sympy\n    return [float(stats.tmean([r[i] for r in rows])) for i in range(len(rows[0]))]\n```';

describe.skipIf(!isBwrapAvailable())("HumanEval's execution environment", () => {
  it(
    'runs answers that import numpy, pandas, scipy and the rest of the image, inside the sandbox',
    async () => {
      const python = await testCodePython();
      const { codeRunner } = await scoringDeps(humanevalBenchmark, {
        env: { ...process.env, PTB_CODE_PYTHON: python },
        venvHome: testHome,
      });
      expect(codeRunner).toBeInstanceOf(SandboxedPythonRunner);
      for (const answer of [numpyAnswer, pandasAnswer, scipyAnswer]) {
        const score = await scoreHumanEvalReply(record, answer, { codeRunner });
        expect(score.value, `${answer}\n${score.explanation}`).toBe(1);
      }
      // the sandbox still refuses what the completion proof depends on: raw memory and native ctypes
      for (const [code, refusal] of [
        [
          'import ctypes\n    return [float(ctypes.string_at(id(rows), 8)[0])]',
          /ctypes is not available in the code sandbox/,
        ],
        ['import _ctypes\n    return []', /import of _ctypes is not allowed in the sandbox/],
      ] as const) {
        const score = await scoreHumanEvalReply(
          record,
          `\`\`\`python\ndef column_means(rows):\n    ${code}\n\`\`\``,
          { codeRunner },
        );
        expect(score.value).toBe(0);
        expect(score.explanation).toMatch(refusal);
      }
    },
    tinyModelTimeoutMs,
  );
});
