import { UserError } from '../../core/errors.ts';
import { PythonSourceError, pythonAssignedString } from '../shared/pythonText.ts';

/**
 * HealthBench's rubric grader prompt (spec §3.8). The template is OpenAI's and is fetched with
 * the reference's grader.py; it is never vendored. Extraction rule: the string constant bound to
 * `GRADER_TEMPLATE` at module level, with its trailing `.strip()` applied.
 */

export const GRADER_TEMPLATE_NAME = 'GRADER_TEMPLATE';
export const CONVERSATION_SLOT = '<<conversation>>';
export const RUBRIC_ITEM_SLOT = '<<rubric_item>>';

export function extractGraderTemplate(pythonSource: string, origin: string): string {
  let template: string;
  try {
    template = pythonAssignedString(pythonSource, GRADER_TEMPLATE_NAME);
  } catch (err) {
    if (!(err instanceof PythonSourceError)) throw err;
    throw new UserError(
      `${origin}: cannot read ${GRADER_TEMPLATE_NAME} (${err.message})`,
      'The grader prompt asset must be the reference HealthBench grader.py.',
    );
  }
  for (const slot of [CONVERSATION_SLOT, RUBRIC_ITEM_SLOT]) {
    if (!template.includes(slot)) {
      throw new UserError(
        `${origin}: ${GRADER_TEMPLATE_NAME} has no ${slot} placeholder`,
        'The grader prompt asset must be the reference HealthBench grader.py.',
      );
    }
  }
  return template;
}

export interface Turn {
  role: string;
  content: string;
}

/** `role: content` blocks joined by blank lines, the graded response appended as the assistant. */
export function renderConversation(conversation: readonly Turn[], response: string): string {
  return [...conversation, { role: 'assistant', content: response }]
    .map((turn) => `${turn.role}: ${turn.content}`)
    .join('\n\n');
}

/** `[points] criterion`. */
export function renderRubricItem(criterion: string, points: number): string {
  return `[${points}] ${criterion}`;
}

/** Python's `str.replace` replaces every occurrence, first the conversation, then the item. */
export function renderGraderPrompt(template: string, conversation: string, rubricItem: string): string {
  return template.split(CONVERSATION_SLOT).join(conversation).split(RUBRIC_ITEM_SLOT).join(rubricItem);
}
