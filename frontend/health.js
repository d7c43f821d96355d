// The health table: one row per run with its diagnostics (the `diagnostics` route): status,
// problem counts, whether gradient-norm events lead loss spikes, and its events as buttons that
// zoom every chart to the event. Sortable by column; the sort is kept in the settings.
// Also turns events into chart markers (eventMarkers).

import {el} from './dom.js';

const KIND_NAMES = {
  nonfinite: 'NaN/Inf',
  loss_spike: 'loss spike',
  grad_explosion: 'grad explosion',
  vanishing_gradient: 'vanishing grad',
  divergence: 'divergence',
  slingshot_precursor: 'slingshot precursor',
  lr_change: 'LR change',
};

// The chart each kind is marked on; non-finite values are already marked from `averages`.
const KIND_ROLES = {
  loss_spike: 'loss',
  divergence: 'loss',
  grad_explosion: 'grad_norm',
  vanishing_gradient: 'grad_norm',
  slingshot_precursor: 'loss',
  lr_change: 'learning_rate',
};

const SEVERITY_RANK = {critical: 2, warning: 1, info: 0};
const STATUS_RANK = {diverged: 3, warning: 2, ok: 1, no_data: 0};
const STATUS_TEXT = {no_data: 'no data'};
const STATUS_TITLE = {no_data: 'No loss, gradient-norm or learning-rate series to check (a held-out run, or no ' +
  'scalars yet); pick tags by hand under "Tags" to check other series.'};
const SHOWN_EVENTS = 2; // per collapsed row, which stays one line high

function problems(data) {
  const count = (severity) => data.events.filter((e) => e.severity === severity).length;
  return {critical: count('critical'), warning: count('warning')};
}

function firstProblem(data) {
  const event = data.events.find((e) => e.severity !== 'info');
  return event ? event.start : Infinity;
}

/** Sort value of a run's row for a column; rows without data sort last. */
function sortValue(key, run, result) {
  if (key === 'run') return run;
  const data = result && result.data;
  if (!data) return null;
  if (key === 'status') return STATUS_RANK[data.status] || 0;
  if (key === 'problems') {
    const p = problems(data);
    return p.critical * 1e6 + p.warning;
  }
  if (key === 'precedence') {
    const p = data.precedence;
    return p && p.of ? p.matched / p.of : -1;
  }
  return firstProblem(data);
}

function eventText(event) {
  const steps = event.start === event.end ? `step ${event.start}` : `steps ${event.start}–${event.end}`;
  return `${KIND_NAMES[event.kind] || event.kind} · ${steps}`;
}

/** [short text, full sentence] of the precedence summary. */
function precedenceText(p) {
  if (!p) return ['—', 'needs a loss and a gradient-norm tag'];
  const short = [];
  const full = [];
  if (p.of) {
    const lead = p.median_lead_steps === null ? '' : ` by ${p.median_lead_steps} steps`;
    short.push(`${p.matched}/${p.of} spikes led${lead}`);
    full.push(`${p.matched} of ${p.of} loss spikes follow a gradient-norm event` +
      (p.median_lead_steps === null ? '' : ` (median lead ${p.median_lead_steps} steps)`));
  } else {
    short.push('no loss spikes');
    full.push('no loss spikes');
  }
  if (p.lag !== null) {
    const lag = `${p.lag > 0 ? '+' : ''}${p.lag}`;
    const r = p.lag_r === null ? '—' : p.lag_r.toFixed(2);
    const n = p.lag_n ?? null;
    short.push(`lag ${lag}${n === null ? '' : ` (n ${n})`}`);
    full.push(`differenced loss and log gradient norm correlate best at lag ${lag} (r ${r}` +
      `${n === null ? '' : ` over ${n} pairs`}; lag > 0: the gradient norm leads)`);
  } else if (p.pairs > 0 && p.min_pairs !== undefined && p.pairs < p.min_pairs + 1) {
    short.push(`no lag (n ${p.pairs})`);
    full.push(`too few differenced pairs (${p.pairs}) for a best lag: it needs at least ${p.min_pairs}`);
  }
  return [short.join(' · '), full.join('; ')];
}

/** Markers for the charts, by role, from the diagnostics of the shown runs. */
export function eventMarkers(runs, results, colors) {
  const markers = {loss: [], grad_norm: [], learning_rate: []};
  for (const r of runs) {
    const data = results.get(r.run) && results.get(r.run).data;
    if (!data) continue;
    for (const e of data.events) {
      const role = KIND_ROLES[e.kind];
      if (!role) continue;
      const from = r.stepToX(e.start);
      const to = r.stepToX(e.end);
      markers[role].push({x: r.stepToX(e.peak_step), from, to, color: r.color, stroke: colors[e.severity],
        detail: `${r.run}: ${e.detail}`});
    }
  }
  return markers;
}

export class HealthTable {
  /** onEvent(run, event): zoom to an event; onSort(): the sort changed (save settings). */
  constructor({settings, onEvent, onSort}) {
    this.settings = settings;
    this.onEvent = onEvent;
    this.onSort = onSort;
    this.runs = [];
    this.colors = new Map();
    this.results = new Map();
    this.expanded = new Set();
    this.groupRows = () => []; // the rows of the groups (groups.js), first
    this.body = el('tbody');
    this.head = el('tr');
    this.note = el('div', {class: 'notes'});
    const heading = el('h2', {text: 'Run health'});
    window.addEventListener('resize', () => this.fitEvents());
    this.element = el('section', {class: 'card health', dataset: {role: 'health'}, 'aria-label': 'Run health'},
      el('header', {class: 'card-header'}, heading,
        el('span', {class: 'muted', text: 'Anomalies found over every logged step. Click an event to zoom every chart to it.'})),
      el('div', {class: 'health-scroll'}, el('table', {class: 'health-table'}, el('thead', {}, this.head), this.body)),
      this.note);
  }

  /** runs: the entries to list (those matching the run filter); colors: run -> colour. */
  setRuns(runs, colors) {
    this.runs = runs;
    this.colors = colors;
    this.render();
  }

  /** results: run -> {data} | {error}; runs absent from it are still loading. */
  setResults(results) {
    this.results = results;
    this.render();
  }

  sortBy(key) {
    const sort = this.settings.healthSort;
    if (sort.key === key) sort.descending = !sort.descending;
    else Object.assign(sort, {key, descending: key !== 'run' && key !== 'events'});
    this.onSort();
    this.render();
  }

  renderHead() {
    const sort = this.settings.healthSort;
    const columns = [['run', 'Run'], ['status', 'Status'], ['problems', 'Problems'],
      ['precedence', 'Gradient norm → loss'], ['events', 'Events (by step)']];
    this.head.replaceChildren(...columns.map(([key, label]) => {
      const active = sort.key === key;
      const arrow = active ? (sort.descending ? ' ▼' : ' ▲') : '';
      const th = el('th', {scope: 'col'},
        el('button', {type: 'button', class: 'sort', text: label + arrow, onclick: () => this.sortBy(key)}));
      th.setAttribute('aria-sort', active ? (sort.descending ? 'descending' : 'ascending') : 'none');
      return th;
    }));
  }

  sortedRuns() {
    const {key, descending} = this.settings.healthSort;
    const keyed = this.runs.map((r) => ({r, v: sortValue(key, r.run, this.results.get(r.run))}));
    keyed.sort((a, b) => {
      if (a.v === null || b.v === null) return (a.v === null) - (b.v === null);
      const order = a.v < b.v ? -1 : a.v > b.v ? 1 : 0;
      return (descending ? -order : order) || a.r.run.localeCompare(b.r.run);
    });
    return keyed.map((k) => k.r);
  }

  render() {
    this.renderHead();
    const hidden = new Set(this.settings.hiddenRuns);
    this.body.replaceChildren(...this.groupRows(), ...this.sortedRuns().map((r) => {
      const result = this.results.get(r.run);
      const swatch = el('span', {class: 'swatch', 'aria-hidden': 'true'});
      swatch.style.background = this.colors.get(r.run);
      const name = el('th', {scope: 'row', title: r.run}, swatch, el('span', {text: r.run}));
      const row = el('tr', {dataset: {run: r.run}, class: hidden.has(r.run) ? 'unticked' : ''}, name);
      if (!result) {
        row.append(el('td', {class: 'muted', text: 'checking…'}), el('td'), el('td'), el('td'));
        return row;
      }
      if (result.error) {
        row.append(el('td', {class: 'status-cell'}, el('span', {class: 'status unknown', text: 'unknown'})),
          el('td', {class: 'error-text', colspan: '3', text: result.error.message}));
        return row;
      }
      const data = result.data;
      const p = problems(data);
      const [precedence, precedenceFull] = precedenceText(data.precedence);
      const counts = [p.critical ? `${p.critical} critical` : '', p.warning ? `${p.warning} warning${p.warning > 1 ? 's' : ''}` : '']
        .filter(Boolean).join(', ') || 'none';
      const running = data.running_mean && data.running_mean.loss;
      row.append(
        el('td', {class: 'status-cell'}, el('span', {class: `status ${data.status}`, text: STATUS_TEXT[data.status] || data.status,
          title: STATUS_TITLE[data.status] || ''})),
        el('td', {text: counts + (running ? ' · loss is a running mean' : ''),
          title: running ? `${data.tags.loss} is logged as a running mean since the epoch's start: no spike is raised at its ` +
            `${running.reset_count} epoch starts.` : ''}),
        el('td', {class: 'precedence', text: precedence, title: precedenceFull}),
        el('td', {}, el('div', {class: this.expanded.has(r.run) ? 'events expanded' : 'events'},
          this.eventButtons(r.run, data.events))));
      return row;
    }));
    const sampled = [...this.results.values()].some((res) => res.data && res.data.sampled);
    this.note.textContent = sampled ? 'Computed on sampled data: spikes between sampled points are missed.' : '';
    this.fitEvents();
  }

  /** In each collapsed row, hides the event chips that do not fit whole (and those after them)
   *  and counts them in "+N more"; only a first chip wider than the cell is shown cut, with an
   *  ellipsis. Runs after each render and on resize (layout is read: the table must be shown). */
  fitEvents() {
    for (const cell of this.body.querySelectorAll('.events:not(.expanded)')) {
      const chips = cell.querySelector('.chips');
      const more = cell.querySelector('button.more');
      if (!chips || !more) continue;
      const buttons = [...chips.children];
      for (const b of buttons) b.hidden = false;
      const edge = chips.getBoundingClientRect().right + 0.5;
      let shown = 0;
      buttons.forEach((b, i) => {
        b.classList.remove('squeezed');
        if (shown === i && b.getBoundingClientRect().right <= edge) shown += 1;
        else b.hidden = true;
      });
      if (!shown && buttons.length) { // not even the first fits whole: it is shown cut, with an ellipsis
        buttons[0].hidden = false;
        buttons[0].classList.add('squeezed');
        shown = 1;
      }
      const hidden = Number(more.dataset.total) - shown;
      more.hidden = hidden === 0;
      more.textContent = `+${hidden} more`;
    }
  }

  eventButtons(run, events) {
    if (!events.length) return el('span', {class: 'muted', text: 'no events'});
    const ordered = [...events].sort((a, b) => (SEVERITY_RANK[b.severity] > 0) - (SEVERITY_RANK[a.severity] > 0) || a.start - b.start);
    const all = this.expanded.has(run);
    const shown = all ? ordered : ordered.slice(0, SHOWN_EVENTS);
    const buttons = shown.map((e) => el('button', {type: 'button', class: `event ${e.severity}`, text: eventText(e),
      title: e.detail, 'aria-label': `${eventText(e)}: ${e.detail}. Zoom the charts to it.`,
      onclick: () => this.onEvent(run, e)}));
    // "+N more" comes first, outside the clipped chips, so it is always visible and the row never
    // grows wider than the table (which would scroll the Run column out of view).
    // (fitEvents then hides the chips that do not fit whole, and counts them here)
    const more = el('button', {type: 'button', class: 'more', dataset: {total: String(ordered.length)},
      text: all ? 'fewer' : `+${ordered.length - shown.length} more`, onclick: () => {
        if (all) this.expanded.delete(run);
        else this.expanded.add(run);
        this.render();
      }});
    more.hidden = !all && ordered.length === shown.length;
    return [more, el('div', {class: 'chips'}, buttons)];
  }
}
