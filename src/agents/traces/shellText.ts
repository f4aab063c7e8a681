/** How shell tool calls are shown: the command a person would type, not the wrapper argv. */

const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

export function shellQuote(word: string): string {
  if (word !== '' && SAFE_WORD.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

const SHELL = /(^|\/)(ba|z|da)?sh$/;

/**
 * `["bash","-lc","python train.py"]` -> `python train.py`; other argv lists are shell-quoted.
 * A string like `bash -lc 'python train.py'` (Codex item protocol) is unwrapped the same way.
 */
export function commandText(command: unknown): string | undefined {
  if (typeof command === 'string') return unwrapShellString(command);
  if (!Array.isArray(command) || !command.every((w) => typeof w === 'string')) return undefined;
  const argv = command as string[];
  if (argv.length === 3 && SHELL.test(argv[0]!) && (argv[1] === '-lc' || argv[1] === '-c')) return argv[2]!;
  return argv.map(shellQuote).join(' ');
}

// Embedded single quotes appear as '\'' or '"'"' depending on the quoting library.
const WRAPPED = /^(?:\S*\/)?(?:ba|z|da)?sh -l?c '((?:[^']|'\\''|'"'"')*)'$/s;

const WRAPPED_WORD = /^(?:\S*\/)?(?:ba|z|da)?sh -l?c ([^\s'"]+)$/;

function unwrapShellString(command: string): string {
  const word = WRAPPED_WORD.exec(command);
  if (word) return word[1]!;
  const m = WRAPPED.exec(command);
  if (!m) return command;
  return m[1]!.replace(/'\\''|'"'"'/g, "'");
}
