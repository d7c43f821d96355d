// The sidebar: run selector, tag pickers, averaging and display settings, refresh, zoom reset
// and CSV export. It edits the shared settings object and reports what changed:
//   onChange('data')  -> the data must be fetched again (debounced for slider drags)
//   onChange('view')  -> the same data must be drawn differently

import {debounce, el, field, select, setOptions, uid} from './dom.js';
import {CHOICES, LIMITS, ROLES, ROLE_NAMES} from './state.js';

const SLIDER_STEPS = 1000;
const SLIDER_DEBOUNCE_MS = 250;

/** The run filter as a case-insensitive regex; an invalid one falls back to plain text. */
export function runMatcher(filter) {
  if (!filter) return {test: () => true, valid: true};
  try {
    const re = new RegExp(filter, 'i');
    return {test: (name) => re.test(name), valid: true};
  } catch {
    const needle = filter.toLowerCase();
    return {test: (name) => name.toLowerCase().includes(needle), valid: false};
  }
}

/** A run's loading progress: a bar and a percentage ({bytes_read, bytes_total}, either may be missing). */
function runProgress(progress) {
  const read = progress && Number.isFinite(progress.bytes_read) ? progress.bytes_read : 0;
  const total = progress && Number.isFinite(progress.bytes_total) ? progress.bytes_total : 0;
  const percent = total > 0 ? Math.min(100, Math.floor((100 * read) / total)) : null;
  const bar = el('span', {class: 'run-progress-bar'});
  bar.style.width = `${percent ?? 0}%`;
  const meter = el('span', {class: 'run-progress', role: 'progressbar', 'aria-label': 'Loading',
    'aria-valuemin': '0', 'aria-valuemax': '100'}, bar);
  if (percent !== null) meter.setAttribute('aria-valuenow', String(percent));
  return el('div', {class: 'run-loading'}, meter,
    el('span', {class: 'run-progress-text', text: percent === null ? 'loading…' : `loading ${percent}%`}));
}

function section(title, ...children) {
  const id = uid('section');
  return el('section', {class: 'side-section', 'aria-labelledby': id}, el('h2', {id, text: title}), ...children);
}

export class Sidebar {
  /** handlers: {onChange(kind), onRefresh(), onResetZoom(), onExport(run, role), hasSeries(run, role)} */
  constructor(settings, handlers) {
    this.settings = settings;
    this.handlers = handlers;
    this.runs = [];
    this.colors = new Map();
    this.windowMax = {points: 1000, steps: 1000};
    this.dataSoon = debounce(() => handlers.onChange('data'), SLIDER_DEBOUNCE_MS);
    this.element = el('aside', {class: 'sidebar', 'aria-label': 'Batch Averages settings'},
      this.buildRuns(), this.buildTags(), this.buildAveraging(), this.buildDisplay(), this.buildData());
    this.syncAveraging();
  }

  changed(kind) {
    this.handlers.onChange(kind);
  }

  // Runs -----------------------------------------------------------------------------------
  buildRuns() {
    const s = this.settings;
    this.filter = el('input', {type: 'search', value: s.runFilter, placeholder: 'regex, e.g. lr_.*', spellcheck: false,
      oninput: () => {
        s.runFilter = this.filter.value;
        this.renderRunList();
        this.changed('data');
      }});
    this.filterNote = el('div', {class: 'field-note', 'aria-live': 'polite'});
    this.runList = el('ul', {class: 'run-list', 'aria-label': 'Runs'});
    this.runCount = el('span', {class: 'muted'});
    const toggleAll = (show) => () => {
      const matcher = runMatcher(s.runFilter);
      const affected = new Set(this.runs.map((r) => r.run).filter((name) => matcher.test(name)));
      s.hiddenRuns = show ? s.hiddenRuns.filter((name) => !affected.has(name)) : [...new Set([...s.hiddenRuns, ...affected])];
      this.renderRunList();
      this.changed('data');
    };
    return section('Runs',
      field('Filter runs (regex)', this.filter, this.filterNote),
      el('div', {class: 'button-row'},
        el('button', {type: 'button', text: 'All', onclick: toggleAll(true)}),
        el('button', {type: 'button', text: 'None', onclick: toggleAll(false)}),
        this.runCount),
      this.runList);
  }

  /** runs: the `runs` route's entries; colors: run -> colour. */
  setRuns(runs, colors) {
    this.runs = runs;
    this.colors = colors;
    this.renderRunList();
    const tags = [...new Set(runs.flatMap((r) => r.tags))].sort();
    for (const role of ROLES) {
      setOptions(this.tagSelects[role], [['', 'Detected in each run'], ...tags.map((t) => [t, t])], this.settings.tags[role]);
    }
    this.windowMax.points = Math.max(2, ...runs.map((r) => Math.max(0, ...Object.values(r.count))));
    this.syncWindow();
  }

  /** The largest step span of the loaded data, for the window slider in step units. */
  setStepSpan(span) {
    this.windowMax.steps = Math.max(2, Math.ceil(span) + 1);
    this.syncWindow();
  }

  renderRunList() {
    const s = this.settings;
    const matcher = runMatcher(s.runFilter);
    this.filter.classList.toggle('invalid', !matcher.valid);
    this.filterNote.textContent = matcher.valid ? '' : 'Not a valid regular expression: matching as plain text.';
    const hidden = new Set(s.hiddenRuns);
    const matching = this.runs.filter((r) => matcher.test(r.run));
    this.runList.replaceChildren(...matching.map((r) => {
      const swatch = el('span', {class: 'swatch', 'aria-hidden': 'true'});
      swatch.style.background = this.colors.get(r.run);
      const box = el('input', {type: 'checkbox', checked: !hidden.has(r.run), onchange: () => {
        s.hiddenRuns = box.checked ? s.hiddenRuns.filter((n) => n !== r.run) : [...s.hiddenRuns, r.run];
        this.changed('data');
        this.renderExportRuns();
      }});
      const item = el('li', {dataset: {run: r.run, state: r.state || 'ready'}},
        el('label', {class: 'run-item', title: r.run}, box, swatch, el('span', {class: 'run-name', text: r.run})));
      if (r.state === 'loading') item.append(runProgress(r.progress));
      return item;
    }));
    const shown = matching.filter((r) => !hidden.has(r.run)).length;
    this.runCount.textContent = `${shown} of ${this.runs.length} shown`;
    if (!this.runs.length) this.runList.replaceChildren(el('li', {class: 'muted', text: 'No runs with scalar data.'}));
    this.renderExportRuns();
  }

  /** Runs matching the filter, ticked or not, in the order of the `runs` route. */
  filteredRuns() {
    const matcher = runMatcher(this.settings.runFilter);
    return this.runs.filter((r) => matcher.test(r.run));
  }

  /** Runs ticked and matching the filter. */
  visibleRuns() {
    const hidden = new Set(this.settings.hiddenRuns);
    return this.filteredRuns().filter((r) => !hidden.has(r.run));
  }

  // Tags -------------------------------------------------------------------------------------
  buildTags() {
    this.tagSelects = {};
    const fields = ROLES.map((role) => {
      const control = select([['', 'Detected in each run']], '', {onchange: () => {
        this.settings.tags[role] = control.value;
        this.changed('tags');
      }});
      this.tagSelects[role] = control;
      return field(`${ROLE_NAMES[role]} tag`, control);
    });
    return section('Tags', ...fields);
  }

  // Averaging --------------------------------------------------------------------------------
  choice(name, label, kind = 'data') {
    const control = select(CHOICES[name], this.settings[name], {onchange: () => {
      this.settings[name] = control.value;
      this.syncAveraging();
      this.changed(kind);
    }});
    this[`${name}Select`] = control;
    return field(label, control);
  }

  /** A slider and a number box bound to one numeric setting. */
  sliderPair(label, {toSlider, fromSlider, min, max, step, read, write, placeholder = '', extra = null}) {
    const slider = el('input', {type: 'range', min: '0', max: String(SLIDER_STEPS), step: '1', 'aria-label': `${label} slider`});
    const number = el('input', {type: 'number', min: String(min), max: String(max), step: String(step), class: 'number',
      placeholder});
    const shown = () => (read() === null ? '' : String(read()));
    slider.addEventListener('input', () => {
      write(fromSlider(Number(slider.value)));
      number.value = shown();
      this.dataSoon();
    });
    // A typed value applies as it is typed (debounced like the slider), Enter or leaving the field at once
    // (once: Enter and the change event that may follow it are one commit).
    let committed = read();
    const typed = (now) => {
      const value = Number(number.value);
      if (number.value === '' || !Number.isFinite(value)) {
        if (now) number.value = shown();
        return;
      }
      const clamped = Math.min(max, Math.max(min, value));
      if (clamped === read() && !now) return;
      if (now && clamped === committed && clamped === read()) {
        number.value = shown();
        return;
      }
      write(clamped);
      slider.value = String(toSlider(read()));
      if (now) {
        committed = read();
        number.value = shown();
        this.dataSoon.cancel();
        this.changed('data');
      } else {
        this.dataSoon();
      }
    };
    number.addEventListener('input', () => typed(false));
    number.addEventListener('change', () => typed(true));
    number.addEventListener('keydown', (event) => { // Enter applies at once (no debounce wait)
      if (event.key === 'Enter') typed(true);
    });
    const sync = () => {
      committed = read();
      if (document.activeElement !== number) number.value = shown();
      slider.value = String(toSlider(read() ?? 1));
    };
    number.id = uid('field');
    const wrapper = field(label, extra ? el('span', {class: 'field-pair'}, number, extra) : number, slider);
    wrapper.querySelector('label').htmlFor = number.id;
    return {wrapper, sync, number, slider};
  }

  buildAveraging() {
    const s = this.settings;
    const logMax = () => Math.log(this.windowMax[s.unit]);
    // Per run by default (settings.window null: ~1% of each run's own points); a typed or slid window
    // applies to every run, until "Per run" is pressed again.
    this.perRun = el('button', {type: 'button', class: 'small', text: 'Per run',
      title: 'Each run its own window: about 1% of its points', onclick: () => {
        s.window = null;
        this.syncWindow();
        this.dataSoon.cancel();
        this.changed('data');
      }});
    this.window = this.sliderPair('Window', {
      min: LIMITS.window[0], max: LIMITS.window[1], step: 1, placeholder: 'per run', extra: this.perRun,
      toSlider: (w) => Math.round((Math.log(Math.max(1, w)) / logMax()) * SLIDER_STEPS),
      fromSlider: (p) => Math.max(1, Math.round(Math.exp((p / SLIDER_STEPS) * logMax()))),
      read: () => s.window,
      write: (v) => {
        s.window = Math.round(v);
        this.perRun.disabled = false;
      },
    });
    this.windowNote = el('div', {class: 'field-note'});
    this.window.wrapper.append(this.windowNote);
    this.weight = this.sliderPair('EMA weight', {
      min: LIMITS.weight[0], max: LIMITS.weight[1], step: 0.001,
      toSlider: (w) => Math.round((w / LIMITS.weight[1]) * SLIDER_STEPS),
      fromSlider: (p) => Number(((p / SLIDER_STEPS) * LIMITS.weight[1]).toFixed(3)),
      read: () => s.weight,
      write: (v) => {
        s.weight = Number(v.toFixed(3));
      },
    });
    this.windowLabel = this.window.wrapper.querySelector('label');
    return section('Averaging',
      this.choice('method', 'Method'),
      this.window.wrapper,
      this.weight.wrapper,
      this.choice('unit', 'Window counts'),
      this.choice('align', 'Window position'),
      this.choice('edges', 'Edges'),
      this.choice('band', 'Band'));
  }

  syncWindow() {
    this.windowLabel.textContent = `Window (${this.settings.unit})`;
    this.window.sync();
    const auto = this.settings.window === null;
    this.perRun.disabled = auto;
    this.windowNote.textContent = auto ? 'Per run: about 1% of each run\'s points (the charts say which).' :
      'Applies to every run.';
  }

  /** Shows the controls that apply to the chosen method and disables those it ignores. */
  syncAveraging() {
    const s = this.settings;
    const ema = s.method === 'ema';
    this.window.wrapper.hidden = ema;
    this.weight.wrapper.hidden = !ema;
    this.unitSelect.disabled = ema;
    this.alignSelect.disabled = ema || s.method === 'block';
    this.edgesSelect.disabled = ema;
    const minmax = this.bandSelect.querySelector('option[value="minmax"]');
    minmax.disabled = ema;
    if (ema && s.band === 'minmax') {
      s.band = 'std';
      this.bandSelect.value = 'std';
    }
    this.syncWindow();
    this.weight.sync();
  }

  // Display ----------------------------------------------------------------------------------
  buildDisplay() {
    const s = this.settings;
    const raw = el('input', {type: 'checkbox', checked: s.showRaw, onchange: () => {
      s.showRaw = raw.checked;
      this.changed('view');
    }});
    return section('Display',
      el('label', {class: 'check'}, raw, 'Show raw values'),
      this.choice('xAxis', 'X axis', 'axis'));
  }

  // Data -------------------------------------------------------------------------------------
  buildData() {
    this.refreshButton = el('button', {type: 'button', class: 'primary', text: 'Refresh', onclick: () => this.handlers.onRefresh()});
    this.resetZoomButton = el('button', {type: 'button', text: 'Reset zoom', disabled: true, onclick: () => this.handlers.onResetZoom()});
    this.status = el('div', {class: 'field-note', 'aria-live': 'polite'});
    this.exportRun = select([], '');
    this.exportRole = select(ROLES.map((r) => [r, ROLE_NAMES[r]]), 'loss', {onchange: () => this.renderExportRuns()});
    this.exportNote = el('div', {class: 'field-note', 'aria-live': 'polite'});
    const exportButton = this.exportButton = el('button', {type: 'button', text: 'Download CSV', onclick: async () => {
      this.exportNote.textContent = '';
      try {
        await this.handlers.onExport(this.exportRun.value, this.exportRole.value);
      } catch (error) {
        this.exportNote.textContent = `Export failed: ${error.message}`;
      }
    }});
    return section('Data',
      el('div', {class: 'button-row'}, this.refreshButton, this.resetZoomButton),
      this.status,
      el('h3', {text: 'Export averaged series (CSV, every step)'}),
      field('Run', this.exportRun),
      field('Series', this.exportRole),
      el('div', {class: 'button-row'}, exportButton),
      this.exportNote);
  }

  /** Export offers only the shown runs that have the chosen series (a run without it cannot be exported). */
  renderExportRuns() {
    const role = this.exportRole.value;
    const names = this.visibleRuns().filter((r) => this.handlers.hasSeries(r, role)).map((r) => r.run);
    setOptions(this.exportRun, names.map((n) => [n, n]), this.exportRun.value);
    this.exportButton.disabled = !names.length;
    this.exportNote.textContent = names.length ? '' : `No shown run has a ${ROLE_NAMES[role].toLowerCase()} series.`;
  }

  setZoomed(zoomed) {
    this.resetZoomButton.disabled = !zoomed;
  }

  setStatus(text) {
    this.status.textContent = text;
  }
}
