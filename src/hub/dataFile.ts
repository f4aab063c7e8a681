import { assertReadableFile } from '../core/userPaths.ts';
import type { AssetPin } from './assetPin.ts';

/** Larger than any pinned file by two orders of magnitude, and below what one JS string holds. */
export const MAX_DATA_FILE_BYTES = 512 * 1024 * 1024;

/**
 * A local file given for a benchmark's part (`ptb data import`, `--data part=FILE`): it exists, is
 * a file, is neither empty nor oversized; the message says what the part is.
 */
export function checkDataFile(file: string, pin: AssetPin, label: string): void {
  assertReadableFile(file, `${label} file`, {
    hint: `${label} is ${pin.description} (upstream name ${pin.fileName}).`,
    maxBytes: MAX_DATA_FILE_BYTES,
  });
}
