import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * `ptb --help` loads only what src/cli/main.ts reaches through static imports (see the comment at
 * its top). This walks that closure the way the bundler does and keeps it light: command files,
 * a few dependency-free core modules, commander and node builtins. Heavy modules (store, zod,
 * benchmarks, engines…) must be imported inside command actions with `await import()`.
 */
const root = resolve(import.meta.dirname, '../..');
const LIGHT_CORE = new Set([
  'src/core/errors.ts',
  'src/core/paths.ts',
  'src/core/trialLayout.ts',
  'src/core/userPaths.ts',
  'src/core/vocabulary.ts',
]);
const LIGHT_PACKAGES = new Set(['commander']);

/** Static, value-carrying imports and re-exports of a TypeScript file (type-only ones are erased). */
function staticImports(text: string): string[] {
  const out: string[] = [];
  const statement = /^(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*'([^']+)'|^import\s+'([^']+)'/gms;
  for (const m of text.matchAll(statement)) {
    if (m[5]) {
      out.push(m[5]);
      continue;
    }
    if (m[2]) continue; // import type … / export type …
    const clause = m[3]!.trim();
    const braces = /^\{([^}]*)\}$/s.exec(clause);
    if (braces) {
      const names = braces[1]!
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      if (names.length > 0 && names.every((n) => n.startsWith('type '))) continue;
    }
    out.push(m[4]!);
  }
  return out;
}

function closure(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    for (const spec of staticImports(readFileSync(resolve(root, file), 'utf8'))) {
      if (spec.startsWith('.')) todo.push(relative(root, resolve(root, dirname(file), spec)));
      else if (!spec.startsWith('node:')) packages.add(spec.split('/')[0]!);
    }
  }
  return { files, packages };
}

describe('CLI startup stays light', () => {
  it('parses static, type-only and re-exported imports', () => {
    const text = [
      "import { a } from './a.ts';",
      "import type { B } from './b.ts';",
      "import { type C, type D } from './c.ts';",
      "import { type E, f } from './e.ts';",
      "export { g } from './g.ts';",
      "export type { H } from './h.ts';",
      "import './side.ts';",
      "const lazy = await import('./lazy.ts');",
      "import {\n  x,\n  type Y,\n} from 'zod';",
    ].join('\n');
    expect(staticImports(text)).toEqual(['./a.ts', './e.ts', './g.ts', './side.ts', 'zod']);
  });

  it('src/cli/main.ts reaches only command files, light core modules and commander', () => {
    const { files, packages } = closure('src/cli/main.ts');
    const heavy = [...files].filter((f) => !f.startsWith('src/cli/') && !LIGHT_CORE.has(f));
    expect(heavy).toEqual([]);
    expect([...packages].filter((p) => !LIGHT_PACKAGES.has(p))).toEqual([]);
    // The walk itself works: every command file is in the closure.
    expect(files.has('src/cli/eval.ts')).toBe(true);
  });
});
