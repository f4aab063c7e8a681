/**
 * A strict XML well-formedness check for the SVG and XHTML-ish output of the report (no XML
 * parser is among the dependencies): balanced tags, quoted unique attributes, known entities, one
 * root. Returns the problems found (empty when well-formed).
 */
export function xmlProblems(xml: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  const checkText = (text: string, where: number) => {
    for (const m of text.matchAll(/&([^;\s]*);?/g)) {
      if (!/^&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);$/.test(m[0])) {
        problems.push(`bad entity ${m[0]} at ${where + (m.index ?? 0)}`);
      }
    }
  };
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const text = xml.slice(i, lt < 0 ? xml.length : lt);
    if (stack.length === 0 && text.trim() !== '') problems.push(`text outside the root at ${i}`);
    checkText(text, i);
    if (lt < 0) break;
    if (xml.startsWith('<?', lt)) {
      const end = xml.indexOf('?>', lt);
      if (end < 0) return [...problems, 'unterminated processing instruction'];
      i = end + 2;
      continue;
    }
    if (xml.startsWith('<!--', lt)) {
      const end = xml.indexOf('-->', lt);
      if (end < 0) return [...problems, 'unterminated comment'];
      i = end + 3;
      continue;
    }
    const gt = xml.indexOf('>', lt);
    if (gt < 0) return [...problems, `unterminated tag at ${lt}`];
    const tag = xml.slice(lt + 1, gt);
    if (tag.includes('<')) problems.push(`'<' inside a tag at ${lt}`);
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      const open = stack.pop();
      if (open !== name) problems.push(`</${name}> closes <${open ?? 'nothing'}> at ${lt}`);
    } else {
      const selfClosing = tag.endsWith('/');
      const body = selfClosing ? tag.slice(0, -1) : tag;
      const nameMatch = /^([A-Za-z_][\w:.-]*)/.exec(body);
      if (!nameMatch) {
        problems.push(`bad tag name at ${lt}`);
      } else {
        const rest = body.slice(nameMatch[1]!.length);
        const seen = new Set<string>();
        const consumed = rest.replace(
          /\s+([A-Za-z_][\w:.-]*)\s*=\s*("[^"<]*"|'[^'<]*')/g,
          (_all, attr: string, value: string) => {
            if (seen.has(attr)) problems.push(`duplicate attribute ${attr} at ${lt}`);
            seen.add(attr);
            checkText(value.slice(1, -1), lt);
            return '';
          },
        );
        if (consumed.trim() !== '') problems.push(`malformed attributes "${consumed.trim()}" at ${lt}`);
        if (stack.length === 0) roots++;
        if (!selfClosing) stack.push(nameMatch[1]!);
      }
    }
    i = gt + 1;
  }
  if (stack.length > 0) problems.push(`unclosed <${stack.join('>, <')}>`);
  if (roots !== 1) problems.push(`${roots} root elements`);
  return problems;
}
