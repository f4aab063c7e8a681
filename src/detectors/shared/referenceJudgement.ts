import { existsSync, readFileSync } from 'node:fs';
import type { Detector } from '../types.ts';
import { Findings, verdictFrom } from './verdicts.ts';

/**
 * The verdict the reference's own judge left in an upstream run directory
 * (contamination_judgement.txt, disallowed_model_judgement.txt), read as upstream aggregation
 * reads it: stripped content compared exactly; a missing or unexpected file cannot be trusted.
 * Only for `ptb audit --dir` — in a ptb trial those files are ptb's own output.
 */
export const REFERENCE_JUDGEMENT_ID = 'reference-judgement';

const FILES = [
  {
    name: 'contamination_judgement.txt',
    key: 'contaminationJudgement',
    clean: 'no contamination detected',
    detected: 'contamination detected',
    rule: 'contamination',
  },
  {
    name: 'disallowed_model_judgement.txt',
    key: 'disallowedModelJudgement',
    clean: 'only allowed use detected',
    detected: 'disallowed use detected',
    rule: 'disallowed-model',
  },
] as const;

export const referenceJudgementDetector: Detector = {
  id: REFERENCE_JUDGEMENT_ID,
  version: '1',
  async inspect(evidence) {
    const findings = new Findings();
    for (const file of FILES) {
      const path = evidence.layout[file.key];
      if (!existsSync(path)) {
        findings.unknown('judgement-missing', file.name, `${file.name} is missing`);
        continue;
      }
      const content = readFileSync(path, 'utf8').trim();
      if (content === file.detected)
        findings.flag(file.rule, file.name, `the reference judge wrote "${content}"`);
      else if (content !== file.clean)
        findings.unknown(
          'judgement-unexpected',
          file.name,
          `${file.name} holds unexpected content: "${content.slice(0, 120)}"`,
        );
    }
    return verdictFrom(
      referenceJudgementDetector,
      findings,
      'the reference judge found no contamination and only allowed model use',
    );
  },
};
