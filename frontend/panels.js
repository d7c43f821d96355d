// The tab's cards: one metric chart (loss, gradient norm or learning rate: raw, average, band,
// non-finite markers, tooltip) and the correlation panel (table, rolling, lag, scatter).
//
// Both receive a view from the app: a list of runs, each
//   {run, color, results: {role: {tag, data | error | missing, short?}}, correlation: {data | error | missing, short?},
//    xOf(series) -> x values of an `averages` series, stepToX(step) -> x}
// plus {showRaw, band, markers: {role: [marker]}}. `short` ({window, length, unit}, from the server's
// window_longer_than_series error) marks a run shorter than the window: `data` then holds its raw values
// only (or, for the correlation, the statistics without a rolling line), and a notice says so.

import {LineChart, XGroup} from './chart.js';
import {el, select, setOptions} from './dom.js';
import {lowerBound, nearestIndex} from './plot.js';
import {AXES, formatPrecise} from './scale.js';
import {ScatterChart} from './scatter.js';
import {LIMITS, ROLE_NAMES, Y_SCALES} from './state.js';

/** Chart height: three metric cards fill the window (at 1280x800, below TensorBoard's bar). */
const chartHeight = () => Math.max(150, Math.min(300, Math.round((window.innerHeight - 12) / 3 - 66)));
const RAW_ALPHA = 0.28;

const GRAD_NORM_HELP = [
  '# Keras: one callback logs loss, gradient norm and learning rate every batch',
  'from tb_batchavg.summary import BatchAverages',
  'model.fit(x, y, callbacks=[BatchAverages("logs/run1")])',
  '# custom TensorFlow loop, inside `with writer.as_default():`',
  'from tb_batchavg.summary import log_batch; log_batch(step, loss, grads, optimizer)',
  '# PyTorch, after loss.backward()',
  'norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))',
  'writer.add_scalar("train/grad_norm", norm, step)',
].join('\n');

/** null (JSON's non-finite) -> NaN, as a Float64Array. */
function numbers(values) {
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i] === null ? NaN : values[i];
  return out;
}

/**
 * The non-finite steps of an `averages` response grouped into stretches [first, last, count]:
 * steps closer than 1.5 times the mean spacing of the logged points are one stretch.
 */
function nonfiniteStretches(d) {
  const steps = d.nonfinite;
  const raw = d.raw;
  const spacing = raw.count > 1 ? (raw.step[raw.step.length - 1] - raw.step[0]) / (raw.count - 1) : 1;
  const stretches = [];
  for (const step of steps) {
    const last = stretches[stretches.length - 1];
    if (last && step - last[1] <= 1.5 * spacing) {
      last[1] = step;
      last[2] += 1;
    } else {
      stretches.push([step, step, 1]);
    }
  }
  return stretches;
}

const formatR = (r) => (r === null || r === undefined ? '—' : r.toFixed(3));

function swatch(color) {
  const node = el('span', {class: 'swatch', 'aria-hidden': 'true'});
  node.style.background = color;
  return node;
}

function toggle(label, checked, onchange) {
  const box = el('input', {type: 'checkbox', checked});
  box.addEventListener('change', () => onchange(box.checked));
  return el('label', {class: 'check small'}, box, label);
}

/** Fills a list of per-run notices ([{run, color, text}]) shown under a chart; hidden when empty. */
function showNotices(list, items) {
  list.hidden = !items.length;
  list.replaceChildren(...items.map(({run, color, text, kind = 'short'}) =>
    el('li', {class: `run-notice ${kind}`, dataset: {run, kind}}, color ? swatch(color) : null, el('span', {text}))));
}

const NO_POINTS = {x: new Float64Array(0), y: new Float64Array(0), step: [], lower: null, upper: null};

function card(title) {
  const heading = el('h2', {text: title});
  const node = el('section', {class: 'card'});
  node.setAttribute('aria-label', title);
  return {node, heading};
}

/** A card holding one metric's chart; `smoothed` = false for the learning rate (a schedule). */
export class MetricPanel {
  constructor({role, group, settings, onOptions, smoothed = true}) {
    this.role = role;
    this.smoothed = smoothed;
    this.settings = settings;
    this.prepared = [];
    this.view = null;
    this.chart = new LineChart({group, height: chartHeight(), label: `${ROLE_NAMES[role]} chart`,
      describe: (x) => this.describe(x)});
    const options = settings.charts[role];
    this.tagLabel = el('span', {class: 'tag-label muted'});
    this.notices = el('ul', {class: 'run-notices', 'aria-live': 'polite', hidden: true});
    this.scaleNote = el('div', {class: 'scale-note', 'aria-live': 'polite', hidden: true});
    this.notes = el('div', {class: 'notes', 'aria-live': 'polite'});
    this.yScale = select(Y_SCALES, options.yScale, {class: 'small', 'aria-label': `${ROLE_NAMES[role]} y scale`,
      title: 'auto: log while every shown value is > 0, else linear', onchange: () => {
        this.settings.charts[role].yScale = this.yScale.value;
        this.onOptions();
        if (this.view) this.update(this.view);
        this.chart.draw();
      }});
    this.resetY = el('button', {type: 'button', class: 'small', text: 'reset y', hidden: true,
      title: 'Back to the y range that fits the runs (or double-click the y axis)', onclick: () => this.chart.setYZoom(null)});
    this.chart.onYZoom = (range) => {
      this.resetY.hidden = !range;
    };
    this.chart.onOffscale = (list) => this.showOffscale(list);
    const {node, heading} = card(ROLE_NAMES[role]);
    heading.append(' ', this.tagLabel);
    const png = el('button', {type: 'button', class: 'small', text: 'PNG', title: `Save the ${ROLE_NAMES[role]} chart as PNG`,
      onclick: () => this.chart.savePNG(`${role}.png`, ROLE_NAMES[role],
        this.prepared.map((p) => ({color: p.color, text: p.short ? `${p.run} (raw only)` : p.run})))});
    node.append(
      el('header', {class: 'card-header'}, heading, el('div', {class: 'card-tools'},
        this.resetY,
        this.yScale,
        toggle('ignore outliers', options.ignoreOutliers, (v) => this.setOption('ignoreOutliers', v)),
        png)),
      this.chart.area,
      this.scaleNote,
      this.notices,
      this.notes);
    this.offscaleNote = el('div', {class: 'offscale-note', hidden: true});
    node.insertBefore(this.offscaleNote, this.notices);
    node.dataset.role = role;
    this.element = node;
    this.onOptions = onOptions;
    this.chart.setOptions({ignoreOutliers: options.ignoreOutliers, logY: options.yScale !== 'linear'});
    this.chart.setMessage('Loading…');
  }

  setOption(name, value) {
    this.settings.charts[this.role][name] = value;
    this.chart.setOptions({[name]: value});
    this.onOptions();
    this.chart.draw();
  }

  /** Off-scale values (clipped at the chart's edge, marked ▲/▼), per run, under the chart. */
  showOffscale(list) {
    const parts = list.map((o) => {
      const bits = [];
      if (o.above) bits.push(`${o.above} point${o.above > 1 ? 's' : ''} above the range (up to ${formatPrecise(o.max)}) ▲`);
      if (o.below) bits.push(`${o.below} below (down to ${formatPrecise(o.min)}) ▼`);
      return `${o.run ?? ''}: ${bits.join(', ')}`;
    });
    const text = parts.length ? `Clipped at the edge: ${parts.join(' · ')}. Drag on the y axis (or shift-drag) to zoom y.` : '';
    if (this.offscaleNote.textContent !== text) this.offscaleNote.textContent = text;
    this.offscaleNote.title = text;
    this.offscaleNote.hidden = !parts.length;
  }

  /** Turns the view's responses into chart series and markers; the caller draws. */
  update(view) {
    this.view = view;
    const role = this.role;
    const notes = [];
    const notices = [];
    this.prepared = [];
    const tags = new Set();
    const windows = [];
    for (const r of view.runs) {
      const result = r.results[role];
      if (result.missing) continue;
      tags.add(result.tag);
      if (result.error) {
        notes.push(`${r.run}: ${result.error.message}`);
        continue;
      }
      const d = result.data;
      const nonfinite = new Set(d.nonfinite);
      const short = result.short;
      const cadence = d.raw.count > 1 && d.raw.step.length > 1 ?
        (d.raw.step[d.raw.step.length - 1] - d.raw.step[0]) / (d.raw.count - 1) : 1;
      if (short) {
        notices.push({run: r.run, color: r.color, kind: 'short',
          text: `${r.run}: ${short.length} ${short.unit}, shorter than the window ${short.window} – showing raw values only`});
      } else if (this.smoothed && d.params.method !== 'ema') {
        windows.push({run: r.run, color: r.color, window: result.window, unit: d.params.unit, cadence, auto: result.auto});
      }
      if (d.running_mean) {
        notices.push({run: r.run, color: r.color, kind: 'running-mean',
          text: `${r.run}: ${result.tag} is a running mean since the epoch's start (recognised by its ` +
            `${d.running_mean.recognised_by.join(' and ')}), not per-batch values: it smooths itself within each ` +
            `epoch and jumps back at each epoch start (no spike is raised there). Log per-batch values with ` +
            `BatchAverages (docs/logging.md: "Keras's batch logs are not batch values").`});
      }
      this.prepared.push({
        run: r.run,
        color: r.color,
        nonfinite,
        short: Boolean(short),
        nonpositive: d.nonpositive_count || 0,
        raw: {x: r.xOf(d.raw), y: numbers(d.raw.value), step: d.raw.step},
        average: short || !d.average ? NO_POINTS : {x: r.xOf(d.average), y: numbers(d.average.value), step: d.average.step,
          lower: view.band === 'none' ? null : numbers(d.average.lower),
          upper: view.band === 'none' ? null : numbers(d.average.upper)},
        markers: nonfiniteStretches(d).map(([first, last, count]) => ({
          x: r.stepToX(first), from: r.stepToX(first), to: r.stepToX(last), color: r.color, stroke: view.errorColor,
          detail: count === 1 ? `${r.run}: NaN/Inf logged at step ${first}` :
            `${r.run}: ${count} NaN/Inf values logged, steps ${first}–${last}`})),
      });
      if (d.nonfinite_count) {
        const where = view.zoomed ? ' in view' : '';
        notes.push(`${r.run}: ${d.nonfinite_count} NaN/Inf value${d.nonfinite_count > 1 ? 's' : ''}${where} (first at step ${d.nonfinite[0]})`);
      }
    }
    // Which window each run uses, in points and in steps, when they differ (per-run default windows).
    const distinct = new Set(windows.map((w) => `${w.window} ${w.unit}`));
    if (distinct.size > 1) {
      const text = windows.map((w) => {
        const points = w.unit === 'points' ? w.window : Math.max(1, Math.round(w.window / (w.cadence || 1)));
        const steps = w.unit === 'steps' ? w.window : Math.round(w.window * (w.cadence || 1));
        return `${w.run} ${points} point${points > 1 ? 's' : ''} (${steps} step${steps > 1 ? 's' : ''})`;
      }).join(' · ');
      notices.unshift({run: '', color: null, kind: 'windows',
        text: `Window per run (${windows[0].auto ? 'about 1% of each run\'s points' : 'typed'}): ${text}`});
    }
    const missing = view.runs.filter((r) => r.results[role].missing).map((r) => r.run);
    if (missing.length && missing.length < view.runs.length) notes.push(`No ${ROLE_NAMES[role].toLowerCase()} tag in: ${missing.join(', ')}`);
    this.tagLabel.textContent = tags.size ? `· ${[...tags].join(', ')}` : '';
    this.notes.textContent = notes.join(' · ');
    this.notes.title = notes.join('\n');
    showNotices(this.notices, notices);

    // y scale: "auto" is log while every shown value is > 0, else linear, and says why; a forced log
    // says how many values it cannot show.
    const mode = this.settings.charts[role].yScale;
    const nonpositive = this.prepared.filter((p) => p.nonpositive > 0);
    const count = nonpositive.reduce((n, p) => n + p.nonpositive, 0);
    const which = nonpositive.map((p) => `${p.run}: ${p.nonpositive}`).join(', ');
    let scaleNote = '';
    if (mode === 'auto' && count) scaleNote = `Linear y: ${count} value${count > 1 ? 's' : ''} ≤ 0 (${which}) cannot be shown on a log axis.`;
    if (mode === 'log' && count) scaleNote = `${count} value${count > 1 ? 's' : ''} ≤ 0 not shown (log y; ${which}).`;
    this.scaleNote.textContent = scaleNote;
    this.scaleNote.hidden = !scaleNote;
    this.chart.setOptions({logY: mode === 'log' || (mode === 'auto' && !count)});

    let series = [];
    const rawStyle = this.smoothed ? {alpha: view.band === 'none' ? RAW_ALPHA : RAW_ALPHA * 0.7, width: 1} : {alpha: 1, width: 1.5};
    for (const p of this.prepared) {
      // A run without an average (shorter than its window) is drawn raw, fully opaque, even with raw lines off.
      if (p.short && this.smoothed) series.push({color: p.color, run: p.run, ...p.raw, alpha: 1, width: 1.25, main: true});
      else if (view.showRaw || !this.smoothed) series.push({color: p.color, run: p.run, ...p.raw, ...rawStyle, main: !this.smoothed});
    }
    if (this.smoothed) {
      for (const p of this.prepared) if (!p.short) series.push({color: p.color, run: p.run, ...p.average, width: 1.75, main: true});
    }
    series = this.withGroups(view, series, notes);
    const markers = this.prepared.flatMap((p) => p.markers).concat(view.markers[role] || []);
    this.chart.setData({series, markers});
    this.chart.setMessage(this.emptyMessage(view, missing));
  }

  /**
   * The series with the groups of the view (groups.js): each group's mean across its runs, with its
   * band, drawn over its runs, which are drawn faint (their average only) or not at all.
   */
  withGroups(view, series, notes) {
    this.groupSeries = [];
    this.hiddenMembers = new Set();
    const groups = view.groups || [];
    this.element.dataset.groupMeans = '0';
    if (!groups.length) return series;
    const members = new Set(groups.flatMap((g) => g.runs));
    const out = [];
    for (const s of series) {
      if (!members.has(s.run)) out.push(s);
      else if (view.groupMembersShown && s.main) out.push({...s, alpha: 0.22, width: 1, lower: null, upper: null, main: false});
    }
    if (!view.groupMembersShown) for (const run of members) this.hiddenMembers.add(run);
    for (const g of groups) {
      const result = g.results[this.role];
      if (!result || result.missing) continue;
      if (result.error) {
        notes.push(`group ${g.name}: ${result.error.message}`);
        continue;
      }
      const d = result.data;
      for (const item of d.left_out) notes.push(`group ${g.name}: ${item.run} left out (${item.message || item.reason})`);
      const band = d.band !== 'none';
      const s = {color: g.color, run: `${g.name} (group)`, group: g.name, x: g.xOf(d.step), y: numbers(d.mean), step: d.step,
        n: d.n, lower: band ? numbers(d.lower) : null, upper: band ? numbers(d.upper) : null, width: 2.75, main: true};
      this.groupSeries.push(s);
      out.push(s);
    }
    this.element.dataset.groupMeans = String(this.groupSeries.length);
    return out;
  }

  emptyMessage(view, missing) {
    if (!view.runs.length) return view.emptyReason;
    if (missing.length < view.runs.length) {
      return this.prepared.length ? null : 'The requests for this chart failed (see below).';
    }
    if (this.role !== 'grad_norm') {
      return `None of the selected runs has a ${ROLE_NAMES[this.role].toLowerCase()} tag. Pick one under "Tags".`;
    }
    return el('div', {class: 'help'},
      el('p', {text: 'No gradient-norm tag in the selected runs. Log the global gradient norm at every batch ' +
        '(any tag matching grad_norm, gradient_norm or global_norm is found automatically, or pick a tag under "Tags"):'}),
      el('pre', {class: 'snippet', text: GRAD_NORM_HELP}));
  }

  /** Tooltip content at x: per run, the nearest logged step with its raw and average values. */
  describe(x) {
    const axis = this.chart.xAxis;
    const rows = [];
    const points = [];
    let snapped;
    for (const g of this.groupSeries || []) {
      const i = nearestIndex(g.x, x);
      if (i < 0) continue;
      if (snapped === undefined || Math.abs(g.x[i] - x) < Math.abs(snapped - x)) snapped = g.x[i];
      const v = g.y[i];
      const text = `${Number.isNaN(v) ? '—' : formatPrecise(v)} (n ${g.n[i]})`;
      const cells = this.smoothed ? [`${g.group}: mean of runs`, String(g.step[i]), '—', text] : [`${g.group}: mean of runs`, String(g.step[i]), text];
      rows.push({color: g.color, cells, dataset: {group: g.group, step: String(g.step[i]), n: String(g.n[i]),
        mean: Number.isNaN(v) ? 'null' : String(v)}});
      points.push({x: g.x[i], y: v, color: g.color});
    }
    for (const p of this.prepared) {
      if (this.hiddenMembers && this.hiddenMembers.has(p.run)) continue;
      const i = nearestIndex(p.raw.x, x);
      if (i < 0) continue;
      const step = p.raw.step[i];
      const rawValue = p.raw.y[i];
      if (snapped === undefined || Math.abs(p.raw.x[i] - x) < Math.abs(snapped - x)) snapped = p.raw.x[i];
      const rawText = Number.isNaN(rawValue) ? (p.nonfinite.has(step) ? 'NaN/Inf' : '—') : formatPrecise(rawValue);
      const dataset = {run: p.run, step: String(step), raw: Number.isNaN(rawValue) ? 'null' : String(rawValue)};
      const cells = [p.run, String(step), rawText];
      if (!this.smoothed) {
        rows.push({color: p.color, cells, dataset});
        points.push({x: p.raw.x[i], y: rawValue, color: p.color});
        continue;
      }
      let j = lowerBound(p.average.step, step);
      if (p.average.step[j] !== step) j = nearestIndex(p.average.x, p.raw.x[i]);
      let averageText = p.short ? '— (run shorter than the window)' : '—';
      // An average from a different step is shown only within the local spacing of raw points.
      const spacing = Math.max(i > 0 ? p.raw.x[i] - p.raw.x[i - 1] : 0, i + 1 < p.raw.x.length ? p.raw.x[i + 1] - p.raw.x[i] : 0);
      if (j >= 0 && Math.abs(p.average.x[j] - p.raw.x[i]) <= spacing) {
        const v = p.average.y[j];
        const averageStep = p.average.step[j];
        averageText = Number.isNaN(v) ? '—' : formatPrecise(v);
        if (averageStep !== step) averageText += ` (step ${averageStep})`;
        dataset.average = Number.isNaN(v) ? 'null' : String(v);
        dataset.averageStep = String(averageStep);
        points.push({x: p.average.x[j], y: v, color: p.color});
      }
      if (this.view.showRaw) points.push({x: p.raw.x[i], y: rawValue, color: p.color});
      cells.push(averageText);
      rows.push({color: p.color, cells, dataset});
    }
    if (!rows.length) return null;
    const title = axis === AXES.step ? null : axis.precise(snapped);
    return {
      x: snapped,
      title,
      columns: this.smoothed ? ['run', 'step', 'raw', 'average'] : ['run', 'step', 'value'],
      rows,
      points,
    };
  }
}

/** Correlation of loss and gradient norm: table, rolling r on the shared axis, lag chart, scatter. */
export class CorrelationPanel {
  constructor({group, settings, onChange}) {
    this.settings = settings;
    this.onChange = onChange;
    this.view = null;
    const s = settings;
    const number = (name, label) => {
      const [min, max] = LIMITS[name];
      const input = el('input', {type: 'number', class: 'number', min: String(min), max: String(max), step: '1', value: String(s[name])});
      input.addEventListener('change', () => {
        const v = Math.round(Number(input.value));
        if (input.value === '' || !Number.isFinite(v)) {
          input.value = String(s[name]);
          return;
        }
        s[name] = Math.min(max, Math.max(min, v));
        input.value = String(s[name]);
        onChange('data');
      });
      input.id = `ba-corr-${name}`;
      return el('span', {class: 'inline-field'}, el('label', {for: input.id, text: label}), input);
    };

    this.table = el('table', {class: 'corr-table'});
    this.rolling = new LineChart({group, height: 130, label: 'Rolling correlation chart', yDomain: [-1.05, 1.05],
      describe: (x) => this.describeRolling(x)});
    this.lagGroup = new XGroup({axis: AXES.lag, zoomable: false});
    this.lag = new LineChart({group: this.lagGroup, height: 190, label: 'Correlation by lag chart',
      describe: (x) => this.describeLag(x)});
    this.scatter = new ScatterChart({height: 190, label: 'Loss against gradient norm scatter chart',
      xName: 'grad norm', yName: 'loss'});
    this.scatterRun = select([], s.scatterRun, {onchange: () => {
      s.scatterRun = this.scatterRun.value;
      onChange('view');
    }});
    this.scatterRun.id = 'ba-scatter-run';
    this.rollingCaption = el('figcaption');
    this.notices = el('ul', {class: 'run-notices', 'aria-live': 'polite', hidden: true});
    this.notes = el('div', {class: 'notes', 'aria-live': 'polite'});

    const {node, heading} = card('Loss and gradient norm together');
    node.dataset.role = 'correlation';
    node.append(
      el('header', {class: 'card-header'}, heading, el('div', {class: 'card-tools'},
        number('corrWindow', 'rolling window'), number('maxLag', 'max lag'))),
      el('p', {class: 'help-line', text: 'Levels share the downward training trend, so they correlate even when batches are ' +
        'unrelated; Δ (step-to-step changes) removes the trend: a high Δ correlation means a batch that moves the ' +
        'gradient norm also moves the loss.'}),
      this.table,
      el('figure', {class: 'figure'}, this.rollingCaption, this.rolling.area, this.notices),
      el('div', {class: 'corr-grid'},
        el('figure', {class: 'figure'},
          el('figcaption', {text: 'Pearson r by lag k. k > 0: the gradient norm leads: its value at point i is ' +
            'paired with the loss k points later. ▼ marks each run\'s best lag.'}),
          this.lag.area),
        el('figure', {class: 'figure'},
          el('figcaption', {}, 'Loss against gradient norm, coloured by step. ',
            el('span', {class: 'inline-field'}, el('label', {for: this.scatterRun.id, text: 'run'}), this.scatterRun),
            toggle('log axes', s.scatterLog, (v) => {
              s.scatterLog = v;
              onChange('view');
            })),
          this.scatter.area)),
      this.notes);
    this.element = node;
    for (const chart of [this.rolling, this.lag, this.scatter]) chart.setMessage('Loading…');
  }

  update(view) {
    this.view = view;
    const s = this.settings;
    const ok = view.runs.filter((r) => r.correlation.data);
    const notes = view.runs.filter((r) => r.correlation.error).map((r) => `${r.run}: ${r.correlation.error.message}`);
    const missing = view.runs.filter((r) => r.correlation.missing).map((r) => r.run);
    if (missing.length) notes.push(`Needs a loss and a gradient-norm tag: ${missing.join(', ')}`);
    this.notes.textContent = notes.join(' · ');
    showNotices(this.notices, ok.filter((r) => r.correlation.short).map((r) => {
      const {length, window} = r.correlation.short;
      return {run: r.run, color: r.color, text: `${r.run}: ${length} joined points, shorter than the rolling window ` +
        `${window} – no rolling correlation (the table, lag and scatter cover the run)`};
    }));
    this.rollingCaption.textContent = `Rolling Pearson r over the last ${s.corrWindow} joined points (follows the zoom); ` +
      'the table, lag and scatter cover each whole run.';

    const head = el('tr', {}, ['run', 'n', 'Pearson', 'Spearman', 'Pearson Δ', 'Spearman Δ', 'best lag'].map(
      (t) => el('th', {scope: 'col', text: t})));
    const rows = ok.map((r) => {
      const c = r.correlation.data;
      const bestIndex = c.lag.best === null ? -1 : c.lag.lags.indexOf(c.lag.best);
      // The best lag is chosen among lags leaving at least min_pairs pairs, and says on how many it rests.
      const best = bestIndex < 0 ? `— (under ${c.lag.min_pairs ?? 30} pairs)` :
        `${c.lag.best} (r ${formatR(c.lag.value[bestIndex])}, n ${c.lag.best_n ?? c.n - Math.abs(c.lag.best)})`;
      return el('tr', {dataset: {run: r.run}},
        el('th', {scope: 'row'}, swatch(r.color), el('span', {text: r.run})),
        [String(c.n), formatR(c.pearson), formatR(c.spearman), formatR(c.pearson_diff), formatR(c.spearman_diff), best]
          .map((t) => el('td', {text: t})));
    });
    this.table.replaceChildren(el('thead', {}, head), el('tbody', {}, rows));

    this.prepared = ok.map((r) => {
      const rolling = r.correlation.short || !r.correlation.data.rolling ? {step: [], value: []} : r.correlation.data.rolling;
      return {run: r.run, color: r.color, data: {...r.correlation.data, rolling},
        rollingX: Float64Array.from(rolling.step, (step) => r.stepToX(step)),
        rollingY: numbers(rolling.value), rollingStep: rolling.step};
    });
    this.rolling.setData({series: this.prepared.map((p) => ({color: p.color, x: p.rollingX, y: p.rollingY, width: 1.5}))});
    this.lag.setData({
      series: this.prepared.map((p) => ({color: p.color, x: p.data.lag.lags, y: numbers(p.data.lag.value), width: 1.5})),
      markers: this.prepared.filter((p) => p.data.lag.best !== null).map((p) => ({
        x: p.data.lag.best, color: p.color,
        detail: `${p.run}: best lag ${p.data.lag.best} (r ${formatR(p.data.lag.value[p.data.lag.lags.indexOf(p.data.lag.best)])})`,
      })),
    });

    const names = this.prepared.map((p) => p.run);
    if (!names.includes(s.scatterRun)) s.scatterRun = names[0] || '';
    setOptions(this.scatterRun, names.map((n) => [n, n]), s.scatterRun);
    const chosen = this.prepared.find((p) => p.run === s.scatterRun);
    // The API's x is the loss and y the gradient norm; the chart puts the gradient norm across.
    this.scatter.setData(chosen ? {x: chosen.data.scatter.y, y: chosen.data.scatter.x, step: chosen.data.scatter.step} : {x: [], y: [], step: []},
      s.scatterLog);

    const message = !view.runs.length ? view.emptyReason :
      ok.length ? null : 'No run has both a loss and a gradient-norm tag (or the requests failed).';
    for (const chart of [this.rolling, this.lag, this.scatter]) chart.setMessage(message);
  }

  draw() {
    this.rolling.draw();
    this.lag.draw();
    this.scatter.draw();
  }

  describeRolling(x) {
    const rows = [];
    const points = [];
    let snapped;
    for (const p of this.prepared) {
      const i = nearestIndex(p.rollingX, x);
      if (i < 0) continue;
      if (snapped === undefined || Math.abs(p.rollingX[i] - x) < Math.abs(snapped - x)) snapped = p.rollingX[i];
      rows.push({color: p.color, cells: [p.run, String(p.rollingStep[i]), formatR(p.data.rolling.value[i])]});
      points.push({x: p.rollingX[i], y: p.rollingY[i], color: p.color});
    }
    return rows.length ? {x: snapped, columns: ['run', 'step', 'r'], rows, points} : null;
  }

  describeLag(x) {
    const lag = Math.round(x);
    const rows = [];
    const points = [];
    for (const p of this.prepared) {
      const i = p.data.lag.lags.indexOf(lag);
      if (i < 0) continue;
      rows.push({color: p.color, cells: [p.run, formatR(p.data.lag.value[i])]});
      points.push({x: lag, y: p.data.lag.value[i] ?? NaN, color: p.color});
    }
    return rows.length ? {x: lag, title: `lag ${lag}`, columns: ['run', 'r'], rows, points} : null;
  }
}
