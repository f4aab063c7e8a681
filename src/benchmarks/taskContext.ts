import type { BenchmarkId } from '../core/schemas.ts';
import { type AssetPin, githubRawUrl, type RecordFormat } from '../hub/assetPin.ts';

/**
 * The reference's extra files in the agent's task folder (upstream `src/run_task.sh` @ 9082063):
 * `src/eval/tasks/<benchmark>/evaluation_code/` copied as `task/evaluation_code/` (Arena-Hard: the
 * questions, baseline answers, judge configs and scripts; HealthBench: the examples with their
 * rubrics and the grader), and `src/eval/tasks/<benchmark>/task_context/*` copied into `task/`
 * (BFCL: its evaluation helper). Fetched from the pinned upstream commit like the other data (cache
 * group `<benchmark>-task-context`, `ptb data pull`), each file sha256-pinned; never shipped.
 */

export const TASK_CONTEXT_REPO = 'aisa-group/PostTrainBench';
export const TASK_CONTEXT_COMMIT = '9082063a62e10e040f1acacdec2ccfc1467e0c00';

/** A pinned file and where it goes in the task folder (its `part` is that path). */
export interface TaskContextFile extends AssetPin {
  /** Path inside the agent's task folder. */
  dest: string;
}

const SOURCES: Readonly<Record<string, { from: string; to: string }>> = {
  arenahardwriting: { from: 'src/eval/tasks/arenahardwriting/evaluation_code/', to: 'evaluation_code/' },
  healthbench: { from: 'src/eval/tasks/healthbench/evaluation_code/', to: 'evaluation_code/' },
  bfcl: { from: 'src/eval/tasks/bfcl/task_context/', to: '' },
};

// [path in the task folder, sha256] of every file of those folders at the pinned commit.
const FILES: Readonly<Partial<Record<BenchmarkId, ReadonlyArray<readonly [string, string]>>>> = {
  arenahardwriting: [
    ['evaluation_code/.gitignore', '50456b1d7659c900fdfc87389d000a729e525fc329f9c8dad9211cb02016ea8f'],
    ['evaluation_code/README.md', 'bab57dab221cf70c54532995dc2cf0983ef367470c3caa068f5dc353244b372e'],
    [
      'evaluation_code/config/api_config.yaml',
      '254db739bbe6a6e6041c44cf514c40e4be4dc43375775f2d5f7997c1d59cf0b9',
    ],
    [
      'evaluation_code/config/api_config_bedrock_models.yaml',
      'f678debf5db3a8c7fd2f092296de041ba154835617be4f2c4e537cfd2b497a95',
    ],
    [
      'evaluation_code/config/arena-hard-v0.1.yaml',
      '87ac45a188421218349697b5eda95cc77f6e60b6f61495d67d8cfebba3210528',
    ],
    [
      'evaluation_code/config/arena-hard-v2.0.yaml',
      '67bb539cb5b0c4a26c9c3b47ef89bc4e3d2fa22105741f3cd97a12ab5fe833e4',
    ],
    [
      'evaluation_code/config/gen_answer_config.yaml',
      '5be5b71c60aec8de77fd8e89d4dff18f2eb499fd429c3961d5f489a169847d79',
    ],
    ['evaluation_code/data/.gitignore', 'd133ac3124146b7e00f1f9583057e995e742b69fd04a40fe4caa7df8d387fa83'],
    [
      'evaluation_code/data/arena-hard-v2.0/model_answer/Qwen3-1.7B.jsonl',
      '87a72bb89edfd05fc8dd32152750649e1bab60ba1b62ebcd055610a729023c30',
    ],
    [
      'evaluation_code/data/arena-hard-v2.0/model_answer/deepseek-r1.jsonl',
      '000f723fb5ca6d5770ecfbdc252953360bd193ff98633d531889d77ac05e3900',
    ],
    [
      'evaluation_code/data/arena-hard-v2.0/model_answer/gemini-2.0-flash-001.jsonl',
      '0f0cabec2a300feb1950f29e93740ce8c6cad9c399aad8040dc70fbf67536c6e',
    ],
    [
      'evaluation_code/data/arena-hard-v2.0/model_answer/o3-mini-2025-01-31.jsonl',
      '367fc75e61d7bec1fec540e6f8d723d3df59252368108e57d8dadf4f684377a6',
    ],
    [
      'evaluation_code/data/arena-hard-v2.0/model_answer/qwq-32b.jsonl',
      'e71966dbb1347ed9f53c045de599741c84c236d7cdcc281a60d3d5f998e1c588',
    ],
    [
      'evaluation_code/data/arena-hard-v2.0/question.jsonl',
      'f337df1022d723b2062bcc530e8e7fbc367548c31fbc87d0ae668f0b6c7609a5',
    ],
    ['evaluation_code/gen_answer.py', 'b77b465ec60e0924378b675bab6896df30c099679a7b84a744153ce0ed27cf90'],
    ['evaluation_code/gen_judgment.py', '95ea53764c00708983916fb4d34d93e28a1ea9ee4e7961c1107a2c4ecf13ca0c'],
    [
      'evaluation_code/leaderboard/arena_hard_leaderboard_20240731.csv',
      'dcc532f251a307f9cb23cb9ac04711e142157f32b934ee752a5456d336a6fe33',
    ],
    ['evaluation_code/license.txt', 'ad1fb9e5864c1be4051af250be48bfe36b82400a9db40c65e86531734efc9eeb'],
    [
      'evaluation_code/misc/past_leaderboards.md',
      '0aa3815bf6d56ec9a45ba0760d46e2bdbb10e31cae17cee3fa07b2a178f26d10',
    ],
    [
      'evaluation_code/misc/pipeline_method.png',
      'bf07850250394d70ffb3ac49c9ec8bf65fb3826548f3858eb9713def66f4aa35',
    ],
    [
      'evaluation_code/misc/qa_browser.png',
      '4b908ae351ed7266076b5cfcb7fb1f42e7f340f26962af53971ec65c63247d46',
    ],
    [
      'evaluation_code/misc/sglang_setup.bash',
      '9b42930f075bd79a0fe5fa52f795e60120f28c741e972ddfd93b1ffb56d59b36',
    ],
    ['evaluation_code/qa_browser.py', 'adb194c2d77f82a1dd561c57eac93fc40d043871129449b9efbe25070d12075a'],
    [
      'evaluation_code/requirements-optional.txt',
      '990c81e552362c97a97ce4a3fefcfdb29bbf57b5919c3203851f0baa75a3ab4c',
    ],
    ['evaluation_code/requirements.txt', '9a108d4e99611a7a9c0e670b1bf0ff742e395b1e6d494206f5e417c72ce892af'],
    ['evaluation_code/show_result.py', 'fbaaad180eab32d7fe2731246f63de71e49701e3d0638170220b138398c0e870'],
    [
      'evaluation_code/utils/add_markdown_info.py',
      'a34f3cc457bb35b6ef66854b55359c8669b1c7307c466230cce1ebfa28ab54be',
    ],
    [
      'evaluation_code/utils/bedrock_utils.py',
      'fcf3f1650fba2990a3f6ec6cd333059d2ed2d9fd9b5c859675c6d61ee1fa1fd8',
    ],
    [
      'evaluation_code/utils/completion.py',
      '74ff767318a7d5373aaf99eb5c8fce144d4bcc93842077e611f8497a03dac2e9',
    ],
    [
      'evaluation_code/utils/judge_utils.py',
      'a8e95101cd42522f6e0bf04066fad872dedea1427d7b3240debd80cb5edc7db2',
    ],
    [
      'evaluation_code/utils/math_utils.py',
      'c2e927dc0f45771d9b387c29837c76c2b5008b1f6f81819259c288c01f49ade0',
    ],
    [
      'evaluation_code/utils/sglang_server.py',
      'ff5e616b25bf511e30ac548e7fc2efddbc7a663d827998f1f39ce0c8b2da77ab',
    ],
  ],
  healthbench: [
    ['evaluation_code/__init__.py', '53ab76d070ee06e5f0d59f3fdd66fd2acaac19d22c723c0e67ff1148f6517320'],
    ['evaluation_code/data/README.md', '021d25fcd957a513fa0d058885af9ad6bff59b034c7f62b7df6979d9208efb36'],
    [
      'evaluation_code/data/healthbench.jsonl',
      '0febc8f013eb5d91e3b7e31bbbb0284ae6aa5fbd8cab68b81d63fa252837c0b0',
    ],
    ['evaluation_code/data_loader.py', '640bfd4daf9a43900c35bbb9dd24598539cec6717a9671f73b62a9bf6bb0314d'],
    ['evaluation_code/grader.py', '36dee9ae21f9988cfb7be262e0558eeac9b098a6fc3ca783a1b0d615cd3f1add'],
    ['evaluation_code/scoring.py', 'ee43e2f3fc954021568287518b3ea94207c4a23e92e4f96bcd2fed58392ebae4'],
    ['evaluation_code/text_utils.py', 'f732ba10109e6f67e1d9ea485a8e5920a0fbdebd3f56b07a06adbc7c6027208b'],
  ],
  bfcl: [['bfcl_evaluation_code.py', 'ee5b45c1b8f33d09068ec73d2cea0d7412add54d7add22053eaafce0e513b3da']],
};

function formatOf(path: string): RecordFormat {
  if (path.endsWith('.jsonl')) return 'jsonl';
  if (path.endsWith('.json')) return 'json';
  if (path.endsWith('.csv')) return 'csv';
  return 'text';
}

/** The task-folder files of a benchmark (none for most). */
export function taskContextFiles(benchmark: BenchmarkId): TaskContextFile[] {
  const source = SOURCES[benchmark];
  return (FILES[benchmark] ?? []).map(([dest, sha256]) => ({
    part: dest,
    dest,
    description: `${benchmark} task-folder file ${dest} (${TASK_CONTEXT_REPO} @ ${TASK_CONTEXT_COMMIT.slice(0, 7)})`,
    url: githubRawUrl(
      TASK_CONTEXT_REPO,
      TASK_CONTEXT_COMMIT,
      `${source!.from}${dest.slice(source!.to.length)}`,
    ),
    sha256,
    format: formatOf(dest),
    fileName: dest.split('/').pop()!,
  }));
}

/** The cache group of a benchmark's task-folder files. */
export function taskContextGroup(benchmark: BenchmarkId): string {
  return `${benchmark}-task-context`;
}
