import { BENCHMARKS } from '../benchmarks/registry.ts';
import { taskContextFiles, taskContextGroup } from '../benchmarks/taskContext.ts';
import { UserError } from '../core/errors.ts';
import type { AssetPin } from '../hub/assetPin.ts';
import { TEMPLATE_GROUP, TEMPLATE_PINS } from './chatTemplates.ts';

/**
 * Everything `ptb data` manages: one group per benchmark, the reference's task-folder files of the
 * benchmarks that have them (`<benchmark>-task-context`), and the reference's chat templates.
 */
export function dataGroups(): Record<string, readonly AssetPin[]> {
  const groups: Record<string, readonly AssetPin[]> = {};
  for (const b of Object.values(BENCHMARKS)) groups[b.id] = b.assets;
  for (const b of Object.values(BENCHMARKS)) {
    const files = taskContextFiles(b.id);
    if (files.length > 0) groups[taskContextGroup(b.id)] = files;
  }
  groups[TEMPLATE_GROUP] = TEMPLATE_PINS;
  return groups;
}

export function pinsOf(group: string): readonly AssetPin[] {
  const pins = dataGroups()[group];
  if (!pins) {
    throw new UserError(
      `unknown data group "${group}"`,
      `Choose from: ${Object.keys(dataGroups()).join(', ')}.`,
    );
  }
  return pins;
}
