/** The substitution rule lives with the audit (a re-audit rescores a finished trial with it). */
export { baselineFor, type FinalScore, finalScore, modelShortName } from '../audit/finalScore.ts';
