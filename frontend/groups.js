// Groups of runs (the "Group runs" control): none, by parent directory (seeds/seed_0..3 -> seeds)
// or by a regular expression's first capture group. Each group is drawn as the mean across its runs
// of each run's average, with a band across runs (the `group` route, fetched with an anchored
// regex of the group's runs), its runs optionally faint beneath; the health table gets one row per
// group (the worst status of its runs and how many runs are in each status).

import {el, field, select} from './dom.js';

const STORAGE_KEY = 'tb-batchavg.grouping.v1';
export const GROUP_MODES = [['none', 'none'], ['parent', 'by parent directory'], ['regex', 'by regex (capture group)']];
export const GROUP_BANDS = [['none', 'none'], ['minmax', 'min–max'], ['std', '± std'], ['ci95', '95% CI']];
const STATUS_ORDER = ['diverged', 'warning', 'ok', 'no_data']; // worst first

const defaults = () => ({mode: 'none', regex: '', band: 'std', showMembers: true});

/** The saved grouping settings over the defaults, keeping only valid values. */
export function loadGrouping() {
  const grouping = defaults();
  let saved = null;
  try {
    saved = JSON.parse(window.localStorage.getItem(STORAGE_KEY) || 'null');
  } catch {
    saved = null;
  }
  if (!saved || typeof saved !== 'object') return grouping;
  if (GROUP_MODES.some(([v]) => v === saved.mode)) grouping.mode = saved.mode;
  if (GROUP_BANDS.some(([v]) => v === saved.band)) grouping.band = saved.band;
  if (typeof saved.regex === 'string') grouping.regex = saved.regex;
  if (typeof saved.showMembers === 'boolean') grouping.showMembers = saved.showMembers;
  return grouping;
}

export function saveGrouping(grouping) {
  try {
    window.localStorage.setItem(STORAGE_KEY, JSON.stringify(grouping));
  } catch {
    // storage full or blocked: the grouping lasts for this page only
  }
}

/** The compiled regex of a grouping (null: none, or not a valid regex). */
function compiled(grouping) {
  if (grouping.mode !== 'regex' || !grouping.regex) return null;
  try {
    return new RegExp(grouping.regex);
  } catch {
    return null;
  }
}

/** The group name of a run, or null (not grouped). */
export function groupOf(run, grouping, regex = compiled(grouping)) {
  if (grouping.mode === 'parent') {
    const slash = run.lastIndexOf('/');
    return slash > 0 ? run.slice(0, slash) : null;
  }
  if (grouping.mode === 'regex' && regex) {
    const m = regex.exec(run);
    if (!m) return null;
    return m.length > 1 ? (m[1] ?? null) : m[0];
  }
  return null;
}

/** [{name, runs: [run names]}], sorted by name, of the runs (names) under `grouping`. */
export function groupRuns(runNames, grouping) {
  const regex = compiled(grouping);
  const groups = new Map();
  for (const run of runNames) {
    const name = groupOf(run, grouping, regex);
    if (name === null) continue;
    if (!groups.has(name)) groups.set(name, []);
    groups.get(name).push(run);
  }
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, runs]) => ({name, runs}));
}

/** Whether the grouping's regex is unusable (typed but invalid). */
export function regexError(grouping) {
  if (grouping.mode !== 'regex' || !grouping.regex) return '';
  try {
    new RegExp(grouping.regex);
    return '';
  } catch (error) {
    return error.message;
  }
}

const escapeRegex = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A regex matching exactly these run names (Python's re and JavaScript's agree on it). */
export function anchoredRegex(runs) {
  return `^(?:${runs.map(escapeRegex).join('|')})$`;
}

/** {worst, counts: {status: n}, checked, of} of a group's runs from the diagnostics results. */
export function groupHealth(runs, results) {
  const counts = {};
  let checked = 0;
  for (const run of runs) {
    const data = results.get(run) && results.get(run).data;
    if (!data) continue;
    checked += 1;
    counts[data.status] = (counts[data.status] || 0) + 1;
  }
  const worst = STATUS_ORDER.find((status) => counts[status]) || null;
  return {worst, counts, checked, of: runs.length};
}

/** The health table's row of a group. */
export function groupHealthRow(group, results, color) {
  const {worst, counts, checked, of} = groupHealth(group.runs, results);
  const swatch = el('span', {class: 'swatch', 'aria-hidden': 'true'});
  swatch.style.background = color;
  const name = el('th', {scope: 'row', title: `group ${group.name}: ${group.runs.join(', ')}`}, swatch,
    el('span', {text: `${group.name} (group of ${of})`}));
  const row = el('tr', {class: 'group-row', dataset: {group: group.name, worst: worst || '', runs: String(of)}}, name);
  const parts = STATUS_ORDER.filter((s) => counts[s]).map((s) => `${counts[s]} ${s === 'no_data' ? 'no data' : s}`);
  const pending = of - checked;
  if (pending) parts.push(`${pending} checking…`);
  row.append(
    el('td', {class: 'status-cell'}, worst ? el('span', {class: `status ${worst}`, text: worst === 'no_data' ? 'no data' : worst,
      title: 'the worst status of the group\'s runs'}) : el('span', {class: 'muted', text: 'checking…'})),
    el('td', {class: 'group-counts', colspan: '3', text: parts.join(' · ')}));
  return row;
}

/** The sidebar's "Group runs" section: mode, regex, band, faint runs. `onChange(kind)`. */
export function groupControl(grouping, onChange) {
  const regexNote = el('div', {class: 'field-note', 'aria-live': 'polite'});
  const regex = el('input', {type: 'text', value: grouping.regex, placeholder: 'e.g. ^(.*)/seed_\\d+$', spellcheck: false,
    'aria-label': 'Group regex', oninput: () => {
      grouping.regex = regex.value;
      sync();
      onChange('groups');
    }});
  const regexField = field('Regex (first capture group names the group)', regex, regexNote);
  const mode = select(GROUP_MODES, grouping.mode, {'aria-label': 'Group runs', onchange: () => {
    grouping.mode = mode.value;
    sync();
    onChange('groups');
  }});
  const band = select(GROUP_BANDS, grouping.band, {'aria-label': 'Group band', onchange: () => {
    grouping.band = band.value;
    onChange('groups');
  }});
  const members = el('input', {type: 'checkbox', checked: grouping.showMembers, onchange: () => {
    grouping.showMembers = members.checked;
    onChange('groups-view');
  }});
  const membersField = el('label', {class: 'check'}, members, 'show the group\'s runs faintly');
  const bandField = field('Band across runs', band);
  function sync() {
    regexField.hidden = grouping.mode !== 'regex';
    bandField.hidden = membersField.hidden = grouping.mode === 'none';
    regexNote.textContent = regexError(grouping) ? `not a valid regex: ${regexError(grouping)}` : '';
  }
  sync();
  const id = 'ba-group-runs';
  return el('section', {class: 'side-section group-section', 'aria-labelledby': id},
    el('h2', {id, text: 'Group runs'}), field('Group runs', mode), regexField, bandField, membersField);
}
