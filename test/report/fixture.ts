import { join } from 'node:path';
import { repoRoot } from '../../src/core/paths.ts';

/** The synthetic reference results tree (see its README.md for the numbers). */
export const FIXTURE = join(repoRoot, 'test/fixtures/upstream-results');
