// Entry point: TensorBoard loads this module in the tab's iframe (whose document has
// <base href="plugin/batchavg/">) and calls render(). Sets up the stylesheet, TensorBoard's font
// and light/dark theme, the app, and TensorBoard's reload notifications.

import {App} from './app.js';
import {invalidateTheme} from './plot.js';

const BOOTSTRAP = 'experimental.bootstrap';
const DATA_RELOADED = 'experimental.DataReloaded';

function loadStylesheet() {
  return new Promise((resolve) => {
    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = './style.css';
    link.addEventListener('load', resolve);
    link.addEventListener('error', resolve);
    document.head.append(link);
  });
}

/** The parent TensorBoard document when it is reachable (same origin), else null. */
function parentDocument() {
  try {
    return window.parent !== window ? window.parent.document : null;
  } catch {
    return null;
  }
}

/** Copies TensorBoard's @font-face rules (Roboto, served by TensorBoard) into this document. */
function adoptFonts(parentDoc) {
  const rules = [];
  for (const sheet of parentDoc.styleSheets) {
    try {
      for (const rule of sheet.cssRules) if (rule.constructor.name === 'CSSFontFaceRule') rules.push(rule.cssText);
    } catch {
      // a stylesheet from another origin: its rules are not readable
    }
  }
  if (!rules.length) return;
  const style = document.createElement('style');
  style.textContent = rules.join('\n');
  document.head.append(style);
}

/**
 * Sets data-theme="dark"/"light" from TensorBoard's dark-mode toggle (which defaults to
 * prefers-color-scheme) when the parent page is reachable, else from prefers-color-scheme.
 */
function followTheme(parentDoc, onChange) {
  const media = window.matchMedia('(prefers-color-scheme: dark)');
  const apply = () => {
    const dark = parentDoc && parentDoc.body ? parentDoc.body.classList.contains('dark-mode') : media.matches;
    const theme = dark ? 'dark' : 'light';
    if (document.documentElement.dataset.theme !== theme) {
      document.documentElement.dataset.theme = theme;
      onChange();
    }
  };
  if (parentDoc && parentDoc.body) {
    new MutationObserver(apply).observe(parentDoc.body, {attributes: true, attributeFilter: ['class']});
  }
  media.addEventListener('change', apply);
  apply();
}

/**
 * TensorBoard's iframe plugin protocol: post "experimental.bootstrap" with a MessagePort to the
 * parent; TensorBoard then sends JSON messages {type, id, payload} on it and waits for a reply
 * {type, id, payload, error, isReply: true}. "experimental.DataReloaded" follows each reload.
 */
function listenForReloads(onReload) {
  if (window.parent === window) return;
  const channel = new MessageChannel();
  channel.port1.onmessage = (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (!message || message.isReply) return;
    channel.port1.postMessage(JSON.stringify({type: message.type, id: message.id, payload: null, error: null, isReply: true}));
    if (message.type === DATA_RELOADED) onReload();
  };
  window.parent.postMessage(BOOTSTRAP, window.location.origin, [channel.port2]);
}

export async function render() {
  await loadStylesheet();
  const parentDoc = parentDocument();
  if (parentDoc) adoptFonts(parentDoc);
  const root = document.createElement('div');
  root.className = 'batchavg';
  root.id = 'batchavg';
  document.body.append(root);
  const app = new App(root);
  followTheme(parentDoc, () => {
    invalidateTheme();
    app.recolor(); // TensorBoard's palette has a dark variant
    app.health.setRuns(app.sidebar.filteredRuns(), app.colors);
    app.render();
  });
  listenForReloads(() => app.refresh());
  window.batchavg = app; // for the browser tests and for poking at the tab from the console
  await app.refresh();
}
