// DOM helpers. Text always goes in through text nodes (`textContent` / `append(string)`),
// never through HTML parsing, so run and tag names are shown as text whatever they contain.

let lastId = 0;

/** A unique element id with a readable prefix (for <label for=...>). */
export function uid(prefix) {
  lastId += 1;
  return `ba-${prefix}-${lastId}`;
}

/**
 * Creates an element. `props`: `class`, `text` (textContent), `dataset`, `on<event>` listeners,
 * DOM properties for non-string values (`hidden: true`, `checked: false`), attributes otherwise.
 * Children: nodes or strings (added as text nodes); null/false are skipped.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (typeof value !== 'string') node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child);
  }
  return node;
}

/** A labelled form field: <div class="field"><label for=id>text</label>control…</div>. */
export function field(labelText, control, ...extra) {
  if (!control.id) control.id = uid('field');
  return el('div', {class: 'field'}, el('label', {for: control.id, text: labelText}), control, ...extra);
}

/** A <select> with [value, text] options. */
export function select(options, value, props = {}) {
  const node = el('select', props);
  setOptions(node, options, value);
  return node;
}

/** Replaces a select's options, keeping `value` selected when present. */
export function setOptions(node, options, value) {
  node.replaceChildren(...options.map(([v, text]) => el('option', {value: v, text})));
  if (options.some(([v]) => v === value)) node.value = value;
}

/** Calls `fn` once `ms` milliseconds have passed without another call. */
export function debounce(fn, ms) {
  let timer = null;
  const debounced = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  debounced.cancel = () => clearTimeout(timer);
  return debounced;
}

/** Saves a Blob as a file through a temporary <a download> (no navigation, no new window). */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = el('a', {href: url, download: filename, hidden: true});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
