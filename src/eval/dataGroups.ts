import { BENCHMARKS } from '../benchmarks/registry.ts';
import { UserError } from '../core/errors.ts';
import type { AssetPin } from '../hub/assetPin.ts';
import { TEMPLATE_GROUP, TEMPLATE_PINS } from './chatTemplates.ts';

/** Everything `ptb data` manages: one group per benchmark plus the reference's chat templates. */
export function dataGroups(): Record<string, readonly AssetPin[]> {
  const groups: Record<string, readonly AssetPin[]> = {};
  for (const b of Object.values(BENCHMARKS)) groups[b.id] = b.assets;
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
