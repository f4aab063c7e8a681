import type { JsonValue } from './pythonLiteral.ts';

/**
 * Python `==` between two JSON-decoded values, the comparison the reference's scorer makes
 * (`tool_call.arguments == target["arguments"]`). Rules, each a Python behaviour:
 *   - bool is a subclass of int: `True == 1`, `True == 1.0`, `False == 0` are all true;
 *   - int and float compare by value: `1 == 1.0`; NaN equals nothing (not even NaN);
 *   - str only equals str, with the same code points (no normalisation, case matters);
 *   - None only equals None;
 *   - lists compare element by element, in order, and must have the same length;
 *   - dicts compare as key → value maps: same key set, equal values, order ignored;
 *   - values of different kinds (str vs number, list vs dict, None vs 0) are never equal.
 * Both sides went through JSON, so tuples are already lists and keys are strings.
 */
export function pythonEquals(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  const na = asNumber(a);
  const nb = asNumber(b);
  if (na !== null || nb !== null) return na !== null && nb !== null && na === nb;
  if (a === null || b === null) return a === b;
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => pythonEquals(item, b[i]));
  }
  const oa = a as { [key: string]: JsonValue };
  const ob = b as { [key: string]: JsonValue };
  const keys = Object.keys(oa);
  if (keys.length !== Object.keys(ob).length) return false;
  return keys.every((key) => Object.hasOwn(ob, key) && pythonEquals(oa[key], ob[key]));
}

/** Numbers and booleans share Python's numeric tower; anything else is not a number. */
function asNumber(v: JsonValue): number | null {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return null;
}
