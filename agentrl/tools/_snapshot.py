"""The page as the agent reads it (JavaScript run in the page by the browser tool).

Visible text, one block per line; each interactive element shows as [n] and is tagged data-agentrl-ref="n" so that
click/type find it again. Links show as `[n] text`; other controls name their role:
`[n] button "Add to cart"`, `[n] textbox "Search" = "mugs"`, `[n] select "Size" = "M" (S | M | L)`.
"""

SNAPSHOT_JS = r"""
() => {
  const INTERACTIVE = 'a[href], button, input:not([type=hidden]), select, textarea, [role=button], [role=link]';
  const SKIP = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'HEAD', 'SVG']);
  const BLOCK = new Set([
    'ADDRESS', 'ARTICLE', 'ASIDE', 'BLOCKQUOTE', 'BR', 'DD', 'DIV', 'DL', 'DT', 'FIELDSET', 'FIGCAPTION',
    'FIGURE', 'FOOTER', 'FORM', 'H1', 'H2', 'H3', 'H4', 'H5', 'H6', 'HEADER', 'HR', 'LI', 'MAIN', 'NAV', 'OL',
    'P', 'PRE', 'SECTION', 'TABLE', 'TR', 'UL',
  ]);
  const lines = [];
  let line = [];
  let n = 0;
  const clean = (s) => (s || '').replace(/\s+/g, ' ').trim();
  const flush = () => {
    const text = clean(line.join(' '));
    if (text) lines.push(text);
    line = [];
  };
  const labelOf = (el) => {
    const byFor = el.id ? document.querySelector(`label[for="${CSS.escape(el.id)}"]`) : null;
    return clean(el.getAttribute('aria-label') || (byFor && byFor.innerText) || el.placeholder || el.name || el.title);
  };
  const describe = (el) => {
    const tag = el.tagName;
    const type = (el.getAttribute('type') || '').toLowerCase();
    if (tag === 'A' || el.getAttribute('role') === 'link') return clean(el.innerText) || labelOf(el) || 'link';
    if (tag === 'BUTTON' || el.getAttribute('role') === 'button' || ['submit', 'button', 'reset'].includes(type)) {
      return `button "${clean(el.innerText) || el.value || labelOf(el)}"`;
    }
    if (tag === 'SELECT') {
      const chosen = el.selectedOptions.length ? clean(el.selectedOptions[0].text) : '';
      const options = Array.from(el.options, (o) => clean(o.text)).join(' | ');
      return `select "${labelOf(el)}" = "${chosen}" (${options})`;
    }
    if (type === 'checkbox' || type === 'radio') return `${type} "${labelOf(el)}" ${el.checked ? '[x]' : '[ ]'}`;
    const value = el.value ? ` = "${el.value}"` : '';
    return `textbox "${labelOf(el)}"${value}`;
  };
  const visible = (el) => {
    if (el.hidden) return false;
    const style = getComputedStyle(el);
    return style.display !== 'none' && style.visibility !== 'hidden';
  };
  const walk = (node) => {
    if (node.nodeType === Node.TEXT_NODE) {
      line.push(node.textContent);
      return;
    }
    if (node.nodeType !== Node.ELEMENT_NODE || SKIP.has(node.tagName.toUpperCase()) || !visible(node)) return;
    if (node.matches(INTERACTIVE) && !node.disabled) {
      n += 1;
      node.setAttribute('data-agentrl-ref', String(n));
      line.push(`[${n}] ${describe(node)}`);
      return;
    }
    const block = BLOCK.has(node.tagName);
    if (block) flush();
    for (const child of node.childNodes) walk(child);
    if (block) flush();
  };
  document.querySelectorAll('[data-agentrl-ref]').forEach((el) => el.removeAttribute('data-agentrl-ref'));
  if (document.body) walk(document.body);
  flush();
  return lines.join('\n');
}
"""
