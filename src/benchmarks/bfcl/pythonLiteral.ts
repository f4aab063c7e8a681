/**
 * A small reader for the Python the BFCL ground truth is written in: one call expression such as
 * `f(a=1, b=[1, 2.5], c="x", d=(1, 2), e={"k": True})`.
 *
 * It mirrors what the reference does with it (inspect_evals `bfcl.parse_target`):
 *   `ast.parse(target, mode="single")`, then `ast.literal_eval` on each keyword's value.
 * So it distinguishes two kinds of failure, as Python does:
 *   - the text is not Python (a SyntaxError, or one of parse_target's asserts): the reference
 *     crashes while loading the dataset, so `parsePythonCall` throws;
 *   - a keyword's value is valid Python but not a literal (a name, an attribute, arithmetic): the
 *     reference prints the error and leaves that argument out, so the argument is skipped.
 */

import { decodePythonQuoted } from '../shared/pythonText.ts';

/** A Python value `ast.literal_eval` can produce. Ints are exact (bigint), as in Python. */
export type PyValue =
  | { type: 'int'; value: bigint }
  | { type: 'float'; value: number }
  | { type: 'complex'; real: number; imag: number }
  | { type: 'str'; value: string }
  | { type: 'bytes'; value: string }
  | { type: 'bool'; value: boolean }
  | { type: 'none' }
  | { type: 'list'; items: PyValue[] }
  | { type: 'tuple'; items: PyValue[] }
  | { type: 'set'; items: PyValue[] }
  | { type: 'dict'; entries: Array<[PyValue, PyValue]> };

/** The text is not valid Python (or not the call shape the reference asserts). */
export class PythonSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PythonSyntaxError';
  }
}

/** Valid Python that `ast.literal_eval` refuses (its ValueError). */
export class LiteralEvalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LiteralEvalError';
  }
}

/** `json.dumps` refuses the value (a set, bytes, complex, or an unsupported dict key). */
export class JsonRoundTripError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JsonRoundTripError';
  }
}

// ---------------------------------------------------------------------------------------------
// Tokens

type Token =
  | { kind: 'name'; text: string; pos: number }
  | { kind: 'number'; text: string; pos: number }
  | { kind: 'string'; value: string; bytes: boolean; fstring: boolean; pos: number }
  | { kind: 'op'; text: string; pos: number }
  | { kind: 'end'; pos: number };

// Longest first, so `**` wins over `*` and `//` over `/`.
const OPERATORS = [
  '**=',
  '//=',
  '>>=',
  '<<=',
  '...',
  '**',
  '//',
  '<<',
  '>>',
  '<=',
  '>=',
  '==',
  '!=',
  '->',
  ':=',
  '+=',
  '-=',
  '*=',
  '/=',
  '%=',
  '&=',
  '|=',
  '^=',
  '@=',
  '+',
  '-',
  '*',
  '/',
  '%',
  '@',
  '&',
  '|',
  '^',
  '~',
  '<',
  '>',
  '(',
  ')',
  '[',
  ']',
  '{',
  '}',
  ',',
  ':',
  '.',
  ';',
  '=',
];

// Python's number grammar (underscores allowed between digits).
const DIGITS = '[0-9](?:_?[0-9])*';
const EXPONENT = `[eE][+-]?${DIGITS}`;
const NUMBER_PATTERNS = [
  /^0[xX](?:_?[0-9a-fA-F])+/,
  /^0[oO](?:_?[0-7])+/,
  /^0[bB](?:_?[01])+/,
  new RegExp(
    `^(?:(?:${DIGITS})?\\.${DIGITS}(?:${EXPONENT})?|${DIGITS}\\.(?:${EXPONENT})?|${DIGITS}${EXPONENT})[jJ]?`,
  ),
  new RegExp(`^${DIGITS}[jJ]`),
  /^(?:[1-9](?:_?[0-9])*|0(?:_?0)*)/,
];

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let depth = 0;
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === ' ' || c === '\t' || c === '\f') {
      i++;
      continue;
    }
    if (c === '\\' && (src[i + 1] === '\n' || src[i + 1] === '\r')) {
      i += src[i + 1] === '\r' && src[i + 2] === '\n' ? 3 : 2;
      continue;
    }
    if (c === '#') {
      while (i < src.length && src[i] !== '\n') i++;
      continue;
    }
    if (c === '\n' || c === '\r') {
      // Inside brackets a newline is whitespace; at top level it ends the statement.
      if (depth > 0) {
        i++;
        continue;
      }
      if (/^(?:\s|#[^\n]*)*$/.test(src.slice(i))) break;
      throw new PythonSyntaxError(`more than one statement at offset ${i}`);
    }
    const prefix = /^([rRbBuUfF]{0,2})(['"])/.exec(src.slice(i));
    if (prefix && isStringPrefix(prefix[1]!) && !(i > 0 && /[A-Za-z0-9_]/.test(src[i - 1]!))) {
      const lit = readString(src, i, prefix[1]!.toLowerCase());
      tokens.push(lit.token);
      i = lit.end;
      continue;
    }
    if (/[A-Za-z_]/.test(c) || c.charCodeAt(0) > 127) {
      const name = /^[\p{L}\p{Nl}_][\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}]*/u.exec(src.slice(i));
      if (!name) throw new PythonSyntaxError(`invalid character ${JSON.stringify(c)} at offset ${i}`);
      tokens.push({ kind: 'name', text: name[0], pos: i });
      i += name[0].length;
      continue;
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      const rest = src.slice(i);
      const match = NUMBER_PATTERNS.map((p) => p.exec(rest)).find((m) => m !== null);
      if (!match) throw new PythonSyntaxError(`invalid number at offset ${i}`);
      const end = i + match[0].length;
      // `1abc`, `012` and the like: Python rejects a number running into a name or digit.
      if (/[A-Za-z0-9_]/.test(src[end] ?? ''))
        throw new PythonSyntaxError(`invalid number literal at offset ${i}`);
      tokens.push({ kind: 'number', text: match[0], pos: i });
      i = end;
      continue;
    }
    const op = OPERATORS.find((o) => src.startsWith(o, i));
    if (!op) throw new PythonSyntaxError(`invalid character ${JSON.stringify(c)} at offset ${i}`);
    if (op === '(' || op === '[' || op === '{') depth++;
    if (op === ')' || op === ']' || op === '}') {
      depth--;
      if (depth < 0) throw new PythonSyntaxError(`unmatched ${op} at offset ${i}`);
    }
    tokens.push({ kind: 'op', text: op, pos: i });
    i += op.length;
  }
  if (depth > 0) throw new PythonSyntaxError('unexpected end of input: unclosed bracket');
  tokens.push({ kind: 'end', pos: src.length });
  return tokens;
}

function isStringPrefix(prefix: string): boolean {
  const p = prefix.toLowerCase();
  return ['', 'r', 'u', 'b', 'f', 'br', 'rb', 'fr', 'rf'].includes(p);
}

function readString(src: string, start: number, prefix: string): { token: Token; end: number } {
  const bytes = prefix.includes('b');
  const fstring = prefix.includes('f');
  const { value, end } = decodePythonQuoted(src, start, start + prefix.length, {
    raw: prefix.includes('r'),
    bytes,
    error: (message) => new PythonSyntaxError(message),
  });
  return { token: { kind: 'string', value, bytes, fstring, pos: start }, end };
}

// ---------------------------------------------------------------------------------------------
// Expressions: enough of Python's grammar to accept whatever `ast.parse` accepts in a keyword
// value, keeping the literal forms apart from everything else.

type Node =
  | { kind: 'constant'; value: PyValue }
  | { kind: 'fstring' }
  | { kind: 'name'; id: string }
  | { kind: 'list' | 'tuple' | 'set'; items: Node[] }
  | { kind: 'dict'; keys: Array<Node | null>; values: Node[] }
  | { kind: 'unary'; op: string; operand: Node }
  | { kind: 'binary'; op: string; left: Node; right: Node }
  | { kind: 'call'; func: Node; args: Node[]; keywords: Array<{ arg: string | null; value: Node }> }
  | { kind: 'starred'; value: Node }
  | { kind: 'other'; what: string };

class Parser {
  private i = 0;
  constructor(private readonly tokens: Token[]) {}

  peek(offset = 0): Token {
    return this.tokens[Math.min(this.i + offset, this.tokens.length - 1)]!;
  }

  next(): Token {
    const t = this.peek();
    if (t.kind !== 'end') this.i++;
    return t;
  }

  isOp(text: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.kind === 'op' && t.text === text;
  }

  isName(text: string): boolean {
    const t = this.peek();
    return t.kind === 'name' && t.text === text;
  }

  expectOp(text: string): void {
    if (!this.isOp(text)) this.fail(`expected '${text}'`);
    this.next();
  }

  fail(message: string): never {
    const t = this.peek();
    throw new PythonSyntaxError(`${message} at offset ${t.pos}`);
  }

  atEnd(): boolean {
    return this.peek().kind === 'end' || this.isOp(';');
  }

  /** A full expression, including a bare tuple `a, b` (an expression statement allows it). */
  expressionList(): Node {
    const first = this.expression();
    if (!this.isOp(',')) return first;
    const items = [first];
    while (this.isOp(',')) {
      this.next();
      if (this.atEnd() || this.isOp(')')) break;
      items.push(this.expression());
    }
    return { kind: 'tuple', items };
  }

  expression(): Node {
    if (this.isName('lambda')) {
      this.next();
      while (!this.isOp(':')) {
        if (this.atEnd()) this.fail("expected ':'");
        this.next();
      }
      this.next();
      this.expression();
      return { kind: 'other', what: 'lambda' };
    }
    const body = this.disjunction();
    if (this.isName('if')) {
      this.next();
      this.disjunction();
      if (!this.isName('else')) this.fail("expected 'else'");
      this.next();
      this.expression();
      return { kind: 'other', what: 'conditional expression' };
    }
    return body;
  }

  disjunction(): Node {
    let left = this.conjunction();
    while (this.isName('or')) {
      this.next();
      this.conjunction();
      left = { kind: 'other', what: 'boolean operation' };
    }
    return left;
  }

  conjunction(): Node {
    let left = this.inversion();
    while (this.isName('and')) {
      this.next();
      this.inversion();
      left = { kind: 'other', what: 'boolean operation' };
    }
    return left;
  }

  inversion(): Node {
    if (this.isName('not')) {
      this.next();
      this.inversion();
      return { kind: 'other', what: 'not' };
    }
    return this.comparison();
  }

  comparison(): Node {
    const left = this.binary(0);
    let compared = false;
    for (;;) {
      const t = this.peek();
      const symbolic = t.kind === 'op' && ['<', '>', '==', '>=', '<=', '!='].includes(t.text);
      const word = t.kind === 'name' && (t.text === 'in' || t.text === 'is');
      const notIn =
        this.isName('not') &&
        this.peek(1).kind === 'name' &&
        (this.peek(1) as { text: string }).text === 'in';
      if (!symbolic && !word && !notIn) break;
      this.next();
      if (notIn) this.next();
      else if (t.kind === 'name' && t.text === 'is' && this.isName('not')) this.next();
      this.binary(0);
      compared = true;
    }
    return compared ? { kind: 'other', what: 'comparison' } : left;
  }

  // Binary operators by Python precedence, loosest first.
  private static readonly LEVELS = [
    ['|'],
    ['^'],
    ['&'],
    ['<<', '>>'],
    ['+', '-'],
    ['*', '/', '//', '%', '@'],
  ];

  binary(level: number): Node {
    if (level >= Parser.LEVELS.length) return this.unary();
    let left = this.binary(level + 1);
    for (;;) {
      const t = this.peek();
      if (t.kind !== 'op' || !Parser.LEVELS[level]!.includes(t.text)) return left;
      this.next();
      const right = this.binary(level + 1);
      left = { kind: 'binary', op: t.text, left, right };
    }
  }

  unary(): Node {
    const t = this.peek();
    if (t.kind === 'op' && (t.text === '-' || t.text === '+' || t.text === '~')) {
      this.next();
      return { kind: 'unary', op: t.text, operand: this.unary() };
    }
    return this.power();
  }

  power(): Node {
    const base = this.primary();
    if (this.isOp('**')) {
      this.next();
      const exponent = this.unary();
      return { kind: 'binary', op: '**', left: base, right: exponent };
    }
    return base;
  }

  primary(): Node {
    let node = this.atom();
    for (;;) {
      if (this.isOp('(')) node = this.callArguments(node);
      else if (this.isOp('.')) {
        this.next();
        if (this.peek().kind !== 'name') this.fail('expected a name after "."');
        this.next();
        node = { kind: 'other', what: 'attribute' };
      } else if (this.isOp('[')) {
        this.next();
        this.subscript();
        this.expectOp(']');
        node = { kind: 'other', what: 'subscript' };
      } else return node;
    }
  }

  subscript(): void {
    for (;;) {
      if (!this.isOp(':') && !this.isOp(']')) this.expression();
      while (this.isOp(':')) {
        this.next();
        if (!this.isOp(':') && !this.isOp(']') && !this.isOp(',')) this.expression();
      }
      if (!this.isOp(',')) return;
      this.next();
      if (this.isOp(']')) return;
    }
  }

  callArguments(func: Node): Node {
    this.expectOp('(');
    const args: Node[] = [];
    const keywords: Array<{ arg: string | null; value: Node }> = [];
    while (!this.isOp(')')) {
      if (this.isOp('**')) {
        this.next();
        keywords.push({ arg: null, value: this.expression() });
      } else if (this.isOp('*')) {
        this.next();
        args.push({ kind: 'starred', value: this.expression() });
      } else if (this.peek().kind === 'name' && this.isOp('=', 1)) {
        const name = (this.next() as { text: string }).text;
        this.next();
        // A repeated keyword parses (the compiler, not ast.parse, rejects it); parse_target keeps the last.
        keywords.push({ arg: name, value: this.expression() });
      } else {
        if (keywords.length > 0) this.fail('positional argument follows keyword argument');
        const value = this.expression();
        if (this.isName('for')) this.fail('generator arguments are not supported');
        args.push(value);
      }
      if (!this.isOp(',')) break;
      this.next();
    }
    this.expectOp(')');
    return { kind: 'call', func, args, keywords };
  }

  atom(): Node {
    const t = this.peek();
    if (t.kind === 'number') {
      this.next();
      return { kind: 'constant', value: numberValue(t.text) };
    }
    if (t.kind === 'string') return this.strings();
    if (t.kind === 'name') {
      this.next();
      if (t.text === 'True') return { kind: 'constant', value: { type: 'bool', value: true } };
      if (t.text === 'False') return { kind: 'constant', value: { type: 'bool', value: false } };
      if (t.text === 'None') return { kind: 'constant', value: { type: 'none' } };
      if (PYTHON_KEYWORDS.has(t.text)) this.fail(`invalid syntax near '${t.text}'`);
      return { kind: 'name', id: t.text };
    }
    if (t.kind === 'op') {
      if (t.text === '(') return this.parenthesised();
      if (t.text === '[') return this.listDisplay();
      if (t.text === '{') return this.braceDisplay();
      if (t.text === '...') {
        this.next();
        return { kind: 'other', what: 'Ellipsis' };
      }
    }
    return this.fail('invalid syntax');
  }

  /** Adjacent string literals concatenate into one constant, as the compiler does. */
  strings(): Node {
    let value = '';
    let bytes: boolean | null = null;
    let fstring = false;
    while (this.peek().kind === 'string') {
      const t = this.next() as Extract<Token, { kind: 'string' }>;
      if (bytes !== null && bytes !== t.bytes) this.fail('cannot mix bytes and nonbytes literals');
      bytes = t.bytes;
      fstring ||= t.fstring;
      value += t.value;
    }
    if (fstring) return { kind: 'fstring' };
    return { kind: 'constant', value: bytes ? { type: 'bytes', value } : { type: 'str', value } };
  }

  parenthesised(): Node {
    this.expectOp('(');
    if (this.isOp(')')) {
      this.next();
      return { kind: 'tuple', items: [] };
    }
    const first = this.starredOrExpression();
    if (this.isName('for')) this.fail('comprehensions are not supported');
    if (this.isOp(')')) {
      this.next();
      if (first.kind === 'starred') this.fail('cannot use starred expression here');
      return first;
    }
    const items = [first];
    while (this.isOp(',')) {
      this.next();
      if (this.isOp(')')) break;
      items.push(this.starredOrExpression());
    }
    this.expectOp(')');
    return { kind: 'tuple', items };
  }

  listDisplay(): Node {
    this.expectOp('[');
    const items: Node[] = [];
    while (!this.isOp(']')) {
      items.push(this.starredOrExpression());
      if (items.length === 1 && this.isName('for')) this.fail('comprehensions are not supported');
      if (!this.isOp(',')) break;
      this.next();
    }
    this.expectOp(']');
    return { kind: 'list', items };
  }

  braceDisplay(): Node {
    this.expectOp('{');
    if (this.isOp('}')) {
      this.next();
      return { kind: 'dict', keys: [], values: [] };
    }
    if (this.isOp('**')) return this.dictRest();
    const first = this.starredOrExpression();
    if (this.isOp(':') && first.kind !== 'starred') {
      this.next();
      const keys: Array<Node | null> = [first];
      const values: Node[] = [this.expression()];
      if (this.isName('for')) this.fail('comprehensions are not supported');
      return this.dictRest(keys, values);
    }
    if (this.isName('for')) this.fail('comprehensions are not supported');
    const items = [first];
    while (this.isOp(',')) {
      this.next();
      if (this.isOp('}')) break;
      items.push(this.starredOrExpression());
    }
    this.expectOp('}');
    return { kind: 'set', items };
  }

  dictRest(keys: Array<Node | null> = [], values: Node[] = []): Node {
    for (;;) {
      if (keys.length > 0) {
        if (!this.isOp(',')) break;
        this.next();
        if (this.isOp('}')) break;
      }
      if (this.isOp('**')) {
        this.next();
        keys.push(null);
        values.push(this.binary(0));
      } else {
        keys.push(this.expression());
        this.expectOp(':');
        values.push(this.expression());
      }
    }
    this.expectOp('}');
    return { kind: 'dict', keys, values };
  }

  starredOrExpression(): Node {
    if (this.isOp('*')) {
      this.next();
      return { kind: 'starred', value: this.binary(0) };
    }
    return this.expression();
  }
}

const PYTHON_KEYWORDS = new Set([
  'and',
  'as',
  'assert',
  'async',
  'await',
  'break',
  'class',
  'continue',
  'def',
  'del',
  'elif',
  'else',
  'except',
  'finally',
  'for',
  'from',
  'global',
  'if',
  'import',
  'in',
  'is',
  'lambda',
  'nonlocal',
  'not',
  'or',
  'pass',
  'raise',
  'return',
  'try',
  'while',
  'with',
  'yield',
]);

function numberValue(text: string): PyValue {
  const clean = text.replace(/_/g, '');
  if (/[jJ]$/.test(clean)) return { type: 'complex', real: 0, imag: Number(clean.slice(0, -1)) };
  if (/^0[xXoObB]/.test(clean)) return { type: 'int', value: BigInt(clean.toLowerCase()) };
  if (/[.eE]/.test(clean)) return { type: 'float', value: Number(clean) };
  return { type: 'int', value: BigInt(clean) };
}

// ---------------------------------------------------------------------------------------------
// literal_eval

function isNumber(v: PyValue): v is Extract<PyValue, { type: 'int' | 'float' | 'complex' }> {
  return v.type === 'int' || v.type === 'float' || v.type === 'complex';
}

/** `ast.literal_eval` on a parsed node: the forms it accepts, ValueError for the rest. */
function literalEval(node: Node): PyValue {
  switch (node.kind) {
    case 'constant':
      return node.value;
    case 'list':
    case 'tuple':
    case 'set':
      return { type: node.kind, items: node.items.map(literalEval) };
    case 'dict': {
      const entries: Array<[PyValue, PyValue]> = [];
      node.keys.forEach((key, index) => {
        if (key === null) throw new LiteralEvalError('malformed node or string: dict unpacking');
        setDictEntry(entries, literalEval(key), literalEval(node.values[index]!));
      });
      return { type: 'dict', entries };
    }
    case 'call':
      // literal_eval's one call: `set()` for the empty set.
      if (
        node.func.kind === 'name' &&
        node.func.id === 'set' &&
        node.args.length === 0 &&
        node.keywords.length === 0
      ) {
        return { type: 'set', items: [] };
      }
      throw new LiteralEvalError('malformed node or string: call');
    case 'unary':
      return signedNumber(node);
    case 'binary': {
      // Only `<real> + <imag>j` and `<real> - <imag>j` (complex literals) are literals.
      if (node.op !== '+' && node.op !== '-')
        throw new LiteralEvalError('malformed node or string: operation');
      const left = signedNumber(node.left);
      const right = plainNumber(node.right);
      if ((left.type === 'int' || left.type === 'float') && right.type === 'complex') {
        const real = left.type === 'int' ? Number(left.value) : left.value;
        return { type: 'complex', real, imag: node.op === '+' ? right.imag : -right.imag };
      }
      throw new LiteralEvalError('malformed node or string: operation');
    }
    default:
      throw new LiteralEvalError(
        `malformed node or string: ${node.kind === 'other' ? node.what : node.kind}`,
      );
  }
}

function plainNumber(node: Node): PyValue {
  if (node.kind === 'constant' && isNumber(node.value)) return node.value;
  throw new LiteralEvalError('malformed node or string: not a number');
}

function signedNumber(node: Node): PyValue {
  if (node.kind === 'unary' && (node.op === '-' || node.op === '+')) {
    const v = plainNumber(node.operand);
    if (node.op === '+') return v;
    if (v.type === 'int') return { type: 'int', value: -v.value };
    if (v.type === 'float') return { type: 'float', value: -v.value };
    if (v.type === 'complex') return { type: 'complex', real: -v.real, imag: -v.imag };
  }
  return plainNumber(node);
}

/** Python dict assignment: a later equal key replaces the value and keeps the first position. */
function setDictEntry(entries: Array<[PyValue, PyValue]>, key: PyValue, value: PyValue): void {
  if (key.type === 'list' || key.type === 'dict' || key.type === 'set') {
    throw new LiteralEvalError(`unhashable type: '${key.type}'`);
  }
  const existing = entries.find(([k]) => pyValueEquals(k, key));
  if (existing) existing[1] = value;
  else entries.push([key, value]);
}

function numericValue(v: PyValue): number | bigint | null {
  if (v.type === 'int') return v.value;
  if (v.type === 'float') return v.value;
  if (v.type === 'bool') return v.value ? 1n : 0n;
  return null;
}

/** Python `==` between parsed values (used for dict keys). */
function pyValueEquals(a: PyValue, b: PyValue): boolean {
  const na = numericValue(a);
  const nb = numericValue(b);
  if (na !== null && nb !== null) return numbersEqual(na, nb);
  if (a.type === 'complex' || b.type === 'complex') {
    const ca = a.type === 'complex' ? a : na !== null ? { real: Number(na), imag: 0 } : null;
    const cb = b.type === 'complex' ? b : nb !== null ? { real: Number(nb), imag: 0 } : null;
    return ca !== null && cb !== null && ca.real === cb.real && ca.imag === cb.imag;
  }
  if (a.type !== b.type) return false;
  switch (a.type) {
    case 'str':
    case 'bytes':
      return a.value === (b as typeof a).value;
    case 'none':
      return true;
    case 'list':
    case 'tuple':
    case 'set': {
      const bi = (b as typeof a).items;
      if (a.type === 'set')
        return a.items.length === bi.length && a.items.every((x) => bi.some((y) => pyValueEquals(x, y)));
      return a.items.length === bi.length && a.items.every((x, i) => pyValueEquals(x, bi[i]!));
    }
    case 'dict': {
      const be = (b as typeof a).entries;
      return (
        a.entries.length === be.length &&
        a.entries.every(([k, v]) => be.some(([k2, v2]) => pyValueEquals(k, k2) && pyValueEquals(v, v2)))
      );
    }
    default:
      return false;
  }
}

/** Exact comparison of an int (bigint) and a float, as Python does it. */
function numbersEqual(a: number | bigint, b: number | bigint): boolean {
  if (typeof a === 'bigint' && typeof b === 'bigint') return a === b;
  if (typeof a === 'number' && typeof b === 'number') return a === b;
  const f = (typeof a === 'number' ? a : b) as number;
  const i = (typeof a === 'bigint' ? a : b) as bigint;
  return Number.isInteger(f) && BigInt(f) === i;
}

// ---------------------------------------------------------------------------------------------
// Public API

/** The target of one BFCL sample: function name and keyword arguments, as Python values. */
export interface PythonCall {
  function: string;
  /** In call order; null is the name of a `**mapping` argument (the reference's `kw.arg` is None). */
  arguments: Array<[string | null, PyValue]>;
  /** Keywords whose values are not literals; the reference prints them and leaves them out. */
  skipped: Array<{ name: string; reason: string }>;
}

/**
 * `parse_target` of inspect_evals bfcl: one statement, an expression that is a call of a plain
 * name, no positional arguments; each keyword value through literal_eval (non-literals skipped).
 */
export function parsePythonCall(src: string): PythonCall {
  const parser = new Parser(tokenize(src));
  if (parser.atEnd()) throw new PythonSyntaxError('expected one expression statement, got nothing');
  const expr = parser.expressionList();
  if (parser.isOp('=')) throw new PythonSyntaxError('expected an expression statement, got an assignment');
  if (parser.isOp(';')) parser.next();
  if (!parser.atEnd() || parser.isOp(';')) parser.fail('expected exactly one statement');
  if (expr.kind !== 'call') throw new PythonSyntaxError(`expected a function call, got ${describe(expr)}`);
  if (expr.func.kind !== 'name') throw new PythonSyntaxError('expected a call of a plain function name');
  if (expr.args.length > 0) throw new PythonSyntaxError('expected keyword arguments only');
  const call: PythonCall = { function: expr.func.id, arguments: [], skipped: [] };
  for (const keyword of expr.keywords) {
    let value: PyValue;
    try {
      value = literalEval(keyword.value);
    } catch (err) {
      if (!(err instanceof LiteralEvalError)) throw err;
      call.skipped.push({ name: keyword.arg ?? '**', reason: err.message });
      continue;
    }
    // `arguments[kw.arg] = value`: a repeated name keeps its first position and takes the new value.
    const existing = call.arguments.find(([name]) => name === keyword.arg);
    if (existing) existing[1] = value;
    else call.arguments.push([keyword.arg, value]);
  }
  return call;
}

function describe(node: Node): string {
  return node.kind === 'other' ? node.what : node.kind;
}

/** `ast.literal_eval` of a whole expression string (exported for tests and other readers). */
export function pythonLiteralEval(src: string): PyValue {
  const parser = new Parser(tokenize(src));
  const expr = parser.expressionList();
  if (!parser.atEnd()) parser.fail('unexpected text after the expression');
  return literalEval(expr);
}

/** JSON values after a Python `json.loads(json.dumps(x))`. Numbers are JS numbers. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * `json.loads(json.dumps(value))`: tuples become lists, dict keys become strings the way
 * json.dumps writes them (int → decimal, float → repr, True → "true", None → "null"), and
 * sets, bytes and complex numbers are refused (json.dumps raises TypeError).
 * Ints beyond 2^53 lose precision here; none occurs in BFCL.
 */
export function jsonRoundTrip(value: PyValue): JsonValue {
  switch (value.type) {
    case 'int':
      return Number(value.value);
    case 'float':
      return value.value;
    case 'str':
      return value.value;
    case 'bool':
      return value.value;
    case 'none':
      return null;
    case 'list':
    case 'tuple':
      return value.items.map(jsonRoundTrip);
    case 'dict': {
      const out: { [key: string]: JsonValue } = {};
      for (const [k, v] of value.entries) out[jsonKey(k)] = jsonRoundTrip(v);
      return out;
    }
    default:
      throw new JsonRoundTripError(`Object of type ${value.type} is not JSON serializable`);
  }
}

function jsonKey(key: PyValue): string {
  switch (key.type) {
    case 'str':
      return key.value;
    case 'int':
      return key.value.toString();
    case 'float':
      return pythonFloatRepr(key.value);
    case 'bool':
      return key.value ? 'true' : 'false';
    case 'none':
      return 'null';
    default:
      throw new JsonRoundTripError(`keys must be str, int, float, bool or None, not ${key.type}`);
  }
}

/** Python's `repr(float)`: shortest round-trip digits, exponent form outside [1e-4, 1e16). */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mantissa, expText] = x.toExponential().split('e') as [string, string];
  const exp = Number(expText);
  if (exp < -4 || exp >= 16) {
    const sign = exp < 0 ? '-' : '+';
    return `${mantissa}e${sign}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  const digits = mantissa.replace('-', '').replace('.', '');
  const negative = x < 0 ? '-' : '';
  if (exp >= 0) {
    const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
    const frac = digits.slice(exp + 1);
    return `${negative}${intPart}.${frac.length > 0 ? frac : '0'}`;
  }
  return `${negative}0.${'0'.repeat(-exp - 1)}${digits}`;
}
