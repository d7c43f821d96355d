// The tab: owns the settings, the sidebar and the panels; fetches runs and per-run data
// (discarding stale responses), maps steps to the chosen x axis, and keeps zoom across refreshes.

import {Latest, Stale, api, settle, windowTooLong} from './api.js';
import {XGroup} from './chart.js';
import {Sidebar} from './controls.js';
import {el} from './dom.js';
import {anchoredRegex, groupControl, groupHealthRow, groupRuns, loadGrouping, saveGrouping} from './groups.js';
import {HealthTable, eventMarkers} from './health.js';
import {CorrelationPanel, MetricPanel} from './panels.js';
import {lowerBound, theme} from './plot.js';
import {AXES} from './scale.js';
import {ROLES, ROLE_NAMES, assignColors, averagingParams, loadSettings, saveSettings, windowFor} from './state.js';

const MAX_POINTS = 2000;
const RAW_PARAMS = {method: 'sma', window: 1, edges: 'partial', band: 'none'};
const POLL_MS = 1000; // the run list is asked for again this often while a run is loading

/** A run is drawn once the server has read it ("state" absent: a server that loads before answering). */
export const isReady = (run) => !run.state || run.state === 'ready';
/** What changes when a run becomes ready or grows: its data must be fetched again. */
const readyKey = (runs) => JSON.stringify(runs.filter(isReady).map((r) => [r.run, r.count]));

/** Maps steps to wall times of one run by linear interpolation between loaded points. */
class Clock {
  constructor(steps, walls) {
    this.steps = steps;
    this.walls = walls;
  }

  wall(step) {
    const {steps, walls} = this;
    if (!steps.length) return NaN;
    if (steps.length === 1) return walls[0];
    const i = Math.min(steps.length - 1, Math.max(1, lowerBound(steps, step)));
    const f = (step - steps[i - 1]) / (steps[i] - steps[i - 1] || 1);
    return walls[i - 1] + f * (walls[i] - walls[i - 1]);
  }

  /** The widest loaded step range covering wall times [w0, w1] (inclusive bounds). */
  stepsFor(w0, w1) {
    const {steps, walls} = this;
    let lo = 0;
    while (lo + 1 < walls.length && walls[lo + 1] <= w0) lo++;
    let hi = walls.length - 1;
    while (hi > 0 && walls[hi - 1] >= w1) hi--;
    return lo <= hi ? {start: steps[lo], end: steps[hi]} : {start: steps[hi], end: steps[lo]};
  }
}

export class App {
  constructor(root) {
    this.root = root;
    this.settings = loadSettings();
    this.runs = [];
    this.colors = new Map();
    this.colorIds = new Map(); // run -> TensorBoard colour id, kept once given (state.assignColors)
    this.runOrder = []; // TensorBoard's run order (run_order route)
    this.cadence = new Map(); // run \n tag -> steps per logged point (for windows in steps)
    this.pollTimer = null;
    this.sampled = false;
    this.runsError = null;
    this.results = new Map(); // run -> {results: {role: ...}, correlation}
    this.clocks = new Map();
    this.origins = new Map(); // run -> first wall time (relative time axis)
    this.fullExtent = null;
    this.diagnostics = new Map(); // run -> {data} | {error}
    this.runsLoad = new Latest();
    this.dataLoad = new Latest();
    this.diagnosticsLoad = new Latest();
    this.renders = 0;
    this.loaded = false; // nothing is drawn before the first data arrives
    this.save = () => saveSettings(this.settings); // small JSON: written on every change
    this.grouping = loadGrouping(); // groups.js: its own saved settings
    this.groupResults = []; // [{name, runs, color, results: {role: {data | error | missing}}}]
    this.groupLoad = new Latest();

    this.group = new XGroup({axis: AXES[this.settings.xAxis], onZoom: () => this.onZoom()});
    this.sidebar = new Sidebar(this.settings, {
      onChange: (kind) => this.onChange(kind),
      onRefresh: () => this.refresh(),
      onResetZoom: () => this.group.setZoom(null),
      onExport: (run, role) => this.exportCSV(run, role),
      hasSeries: (run, role) => isReady(run) && Boolean(this.tagFor(run, role)) && (run.count[this.tagFor(run, role)] || 0) > 0,
    });
    const onOptions = () => this.save();
    this.panels = ROLES.map((role) => new MetricPanel({role, group: this.group, settings: this.settings, onOptions,
      smoothed: role !== 'learning_rate'}));
    this.correlation = new CorrelationPanel({group: this.group, settings: this.settings, onChange: (kind) => this.onChange(kind)});
    this.health = new HealthTable({settings: this.settings, onEvent: (run, event) => this.focusEvent(run, event),
      onSort: () => this.save()});
    this.banners = el('div', {class: 'banners'});
    this.progress = el('div', {class: 'progress', role: 'progressbar', 'aria-label': 'Loading', hidden: true});
    this.empty = el('section', {class: 'card empty', hidden: true});
    this.charts = el('div', {class: 'charts'}, this.panels.map((p) => p.element), this.correlation.element);
    this.main = el('main', {class: 'content'}, this.progress, this.banners, this.empty, this.health.element, this.charts);
    root.append(this.sidebar.element, this.main);
    this.sidebar.element.children[0].after(groupControl(this.grouping, (kind) => this.onGroupChange(kind)));
    this.health.groupRows = () => groupRuns(this.sidebar.filteredRuns().map((r) => r.run), this.grouping)
      .map((g) => groupHealthRow(g, this.diagnostics, this.colors.get(g.runs[0])));
  }

  /** The "Group runs" control changed: 'groups' (fetch the groups again) or 'groups-view' (draw). */
  onGroupChange(kind) {
    saveGrouping(this.grouping);
    this.health.render();
    if (kind === 'groups') this.loadGroups();
    else this.render();
  }

  /** The groups of the shown runs (groups.js), each role's mean across its runs from the `group` route. */
  async loadGroups() {
    const s = this.settings;
    const runs = this.sidebar.visibleRuns().filter(isReady);
    const groups = this.grouping.mode === 'none' ? [] : groupRuns(runs.map((r) => r.run), this.grouping);
    let results;
    try {
      results = await this.groupLoad.run((signal) => Promise.all(groups.map(async (group) => {
        const members = group.runs.map((name) => runs.find((r) => r.run === name));
        const entry = {name: group.name, runs: group.runs, color: this.colors.get(group.runs[0]), results: {}};
        await Promise.all(ROLES.map(async (role) => {
          const having = members.filter((r) => this.tagFor(r, role));
          if (!having.length) {
            entry.results[role] = {missing: true};
            return;
          }
          // One window for the group: the smallest of its runs' (so that no run is left out by an auto window).
          const window = Math.min(...having.map((r) => this.windowOf(r, this.tagFor(r, role))));
          const averaging = role === 'learning_rate' ? {...averagingParams(s, window), ...RAW_PARAMS} : averagingParams(s, window);
          delete averaging.band; // the group's band is across runs
          const picked = s.tags[role];
          entry.results[role] = await settle(api.group({runs: anchoredRegex(having.map((r) => r.run)),
            ...(picked ? {tag: picked} : {role}), averaging, band: this.grouping.band,
            range: this.rangeFor(having[0].run), maxPoints: MAX_POINTS}, signal));
        }));
        return entry;
      })));
    } catch (error) {
      if (error instanceof Stale) return;
      throw error;
    }
    this.groupResults = results;
    this.root.dataset.groups = String(results.length);
    this.render();
  }

  onChange(kind) {
    this.save();
    if (kind === 'tags') this.loadDiagnostics();
    if (kind === 'data' || kind === 'tags') {
      this.health.setRuns(this.sidebar.filteredRuns(), this.colors);
      this.loadData();
    } else if (kind === 'axis') {
      this.changeAxis();
    } else {
      this.render();
    }
  }

  changeAxis() {
    this.group.setAxis(AXES[this.settings.xAxis]);
    if (this.group.zoom) {
      this.group.zoom = null; // a zoom in another unit means nothing here: back to the full range
      this.sidebar.setZoomed(false);
      this.loadData();
      return;
    }
    this.fullExtent = this.extent();
    this.render();
  }

  onZoom() {
    this.sidebar.setZoomed(Boolean(this.group.zoom));
    this.loadData();
  }

  /** Fetches the run list, then every chart's data; keeps settings and zoom. */
  async refresh() {
    clearTimeout(this.pollTimer);
    this.sidebar.setStatus('Loading runs…');
    let body;
    let order;
    try {
      [body, order] = await this.runsLoad.run((signal) => Promise.all([api.runs(signal), settle(api.runOrder(signal))]));
    } catch (error) {
      if (error instanceof Stale) return;
      this.runsError = error;
      this.sidebar.setStatus('');
      this.renderBanners();
      return;
    }
    this.runsError = null;
    if (order.data) this.runOrder = order.data.runs;
    this.takeRuns(body);
    this.save();
    this.renderBanners();
    this.renderEmpty();
    this.health.setRuns(this.sidebar.filteredRuns(), this.colors);
    this.schedulePoll(body);
    this.loadDiagnostics();
    await this.loadData();
  }

  takeRuns(body) {
    this.runs = body.runs;
    this.sampled = body.sampled;
    this.recolor();
  }

  /** Run colours from TensorBoard's palette and run order, light or dark (state.assignColors). */
  recolor() {
    const dark = document.documentElement.dataset.theme === 'dark';
    this.colors = assignColors(this.colorIds, this.runOrder, this.runs.map((r) => r.run), dark);
    this.sidebar.setRuns(this.runs, this.colors);
  }

  /** While a run loads (or the server is still discovering runs), asks for the run list again. */
  schedulePoll(body) {
    clearTimeout(this.pollTimer);
    this.pollTimer = null;
    if (body.loading || body.runs.some((r) => !isReady(r))) this.pollTimer = setTimeout(() => this.poll(), POLL_MS);
  }

  /** One poll: progress shown in the run list; a run that became ready (or grew) is fetched and drawn. */
  async poll() {
    let body;
    let order;
    try {
      [body, order] = await Promise.all([api.runs(), settle(api.runOrder())]);
    } catch {
      this.pollTimer = setTimeout(() => this.poll(), POLL_MS);
      return;
    }
    if (order.data) this.runOrder = order.data.runs;
    const before = readyKey(this.runs);
    const listed = this.runs.map((r) => r.run).join('\n');
    this.takeRuns(body);
    this.schedulePoll(body);
    if (readyKey(this.runs) === before && listed === this.runs.map((r) => r.run).join('\n')) return;
    this.renderEmpty();
    this.health.setRuns(this.sidebar.filteredRuns(), this.colors);
    this.loadDiagnostics();
    await this.loadData();
  }

  /** Diagnostics of every run, for the health table and the event markers. */
  async loadDiagnostics() {
    const runs = this.runs.filter(isReady);
    let results;
    try {
      results = await this.diagnosticsLoad.run((signal) => Promise.all(runs.map(async (run) => {
        const tags = {};
        for (const role of ROLES) {
          if (this.settings.tags[role]) tags[role] = this.tagFor(run, role);
        }
        return [run.run, await settle(api.diagnostics({run: run.run, tags}, signal))];
      })));
    } catch (error) {
      if (error instanceof Stale) return;
      throw error;
    }
    this.diagnostics = new Map(results);
    this.health.setResults(this.diagnostics);
    this.render();
  }

  /** Zooms every chart to a diagnostics event of a run (showing the run if it was unticked). */
  async focusEvent(runName, event) {
    const s = this.settings;
    if (s.hiddenRuns.includes(runName) || !this.clocks.has(runName)) {
      s.hiddenRuns = s.hiddenRuns.filter((name) => name !== runName);
      this.sidebar.renderRunList();
      this.health.render();
      this.save();
      this.group.zoom = null;
      await this.loadData();
    }
    const x0 = this.stepToX(runName, event.start);
    const x1 = this.stepToX(runName, event.end);
    const full = this.fullExtent || [x0, x1];
    const pad = Math.max((x1 - x0) * 0.5, (full[1] - full[0]) * 0.02, s.xAxis === 'step' ? 20 : 0);
    this.group.setZoom([x0 - pad, x1 + pad]);
    this.panels[0].element.scrollIntoView({block: 'start'});
  }

  /** The tag a run uses for a role: the picked tag if the run has it, else the detected one. */
  tagFor(run, role) {
    const picked = this.settings.tags[role];
    if (picked) return run.tags.includes(picked) ? picked : null;
    return run.roles[role];
  }

  /** The step range to request for a run: all of it, or what the zoom shows. */
  rangeFor(run) {
    const zoom = this.group.zoom;
    if (!zoom) return {};
    if (this.settings.xAxis === 'step') return {start: Math.floor(zoom[0]), end: Math.ceil(zoom[1])};
    const clock = this.clocks.get(run);
    if (!clock || !clock.steps.length) return {};
    const offset = this.settings.xAxis === 'relative' ? this.origins.get(run) || 0 : 0;
    return clock.stepsFor(zoom[0] + offset, zoom[1] + offset);
  }

  /** The window of a run's tag: typed, or the run's own default (state.windowFor). */
  windowOf(run, tag) {
    return windowFor(this.settings, run.count[tag] || 0, this.cadence.get(`${run.run}\n${tag}`) || 1);
  }

  async loadData() {
    const runs = this.sidebar.visibleRuns().filter(isReady);
    const s = this.settings;
    const used = new Map();
    this.setLoading(true);
    let results;
    try {
      results = await this.dataLoad.run((signal) => Promise.all(runs.map(async (run) => {
        const range = this.rangeFor(run.run);
        const entry = {results: {}, correlation: {missing: true}};
        const jobs = ROLES.map(async (role) => {
          const tag = this.tagFor(run, role);
          if (!tag) {
            entry.results[role] = {missing: true};
            return;
          }
          const window = this.windowOf(run, tag);
          used.set(`${run.run}\n${tag}`, window);
          const averaging = role === 'learning_rate' ? {...averagingParams(s, window), ...RAW_PARAMS} : averagingParams(s, window);
          const result = await settle(api.averages({run: run.run, tag, averaging, range, maxPoints: MAX_POINTS}, signal));
          // A run shorter than its window: a 200 with its raw values only and the reason (panels.js notices it).
          const short = windowTooLong(result.data);
          entry.results[role] = {tag, window: averaging.window, auto: s.window === null, ...result, ...(short ? {short} : {})};
        });
        const x = this.tagFor(run, 'loss');
        const y = this.tagFor(run, 'grad_norm');
        if (x && y) {
          jobs.push(settle(api.correlation({run: run.run, x, y, window: s.corrWindow, maxLag: s.maxLag, range, maxPoints: MAX_POINTS}, signal))
            .then((c) => {
              // Fewer joined points than the rolling window: no rolling line (notice); table, lag and scatter kept.
              const short = windowTooLong(c.data);
              entry.correlation = short ? {...c, short} : c;
            }));
        }
        await Promise.all(jobs);
        return [run.run, entry];
      })));
    } catch (error) {
      if (error instanceof Stale) return;
      throw error;
    }
    this.results = new Map(results);
    this.loaded = true;
    this.setLoading(false);
    this.updateClocks();
    if (this.learnCadence(used)) {
      this.loadData(); // auto windows in steps: now that each series' cadence is known
      return;
    }
    if (!this.group.zoom) this.fullExtent = this.extent();
    const now = new Date();
    this.sidebar.setStatus(`Updated ${now.toLocaleTimeString()}`);
    this.render();
    if (this.grouping.mode !== 'none' || this.groupResults.length) this.loadGroups();
  }

  setLoading(loading) {
    this.progress.hidden = !loading;
    this.main.setAttribute('aria-busy', String(loading));
    this.root.dataset.state = loading ? 'loading' : 'ready';
  }

  /**
   * Records each series' cadence (steps per logged point) from whole-run responses; true when an
   * auto window in steps would now differ from the one just used.
   */
  learnCadence(used) {
    if (this.group.zoom) return false;
    let changed = false;
    for (const [run, entry] of this.results) {
      for (const result of Object.values(entry.results)) {
        const raw = result.data && result.data.raw;
        if (!raw || raw.count < 2) continue;
        const key = `${run}\n${result.tag}`;
        this.cadence.set(key, (raw.step[raw.step.length - 1] - raw.step[0]) / (raw.count - 1));
        const r = this.runs.find((x) => x.run === run);
        if (r && used.has(key) && result.tag !== this.tagFor(r, 'learning_rate') && this.windowOf(r, result.tag) !== used.get(key)) changed = true;
      }
    }
    return changed;
  }

  /** Step -> wall time maps, and each run's start time (its first logged point). */
  updateClocks() {
    let span = 0;
    for (const [run, entry] of this.results) {
      const responses = ROLES.map((role) => entry.results[role].data).filter(Boolean);
      const series = responses.map((d) => d.raw);
      if (!series.length) continue;
      const densest = series.reduce((a, b) => (b.step.length > a.step.length ? b : a));
      this.clocks.set(run, new Clock(densest.step, densest.wall_time));
      if (densest.step.length) span = Math.max(span, densest.step[densest.step.length - 1] - densest.step[0]);
      this.origins.set(run, Math.min(...responses.map((d) => d.first_wall_time)));
    }
    if (!this.group.zoom) this.sidebar.setStepSpan(span);
  }

  /** x of an `averages` series ({step, wall_time}) on the current axis. */
  xOf(run, series) {
    const axis = this.settings.xAxis;
    if (axis === 'step') return Float64Array.from(series.step);
    const offset = axis === 'relative' ? this.origins.get(run) || 0 : 0;
    return Float64Array.from(series.wall_time, (w) => w - offset);
  }

  stepToX(run, step) {
    const axis = this.settings.xAxis;
    if (axis === 'step') return step;
    const clock = this.clocks.get(run);
    const wall = clock ? clock.wall(step) : NaN;
    return axis === 'relative' ? wall - (this.origins.get(run) || 0) : wall;
  }

  /** The x extent of everything loaded, on the current axis. */
  extent() {
    let lo = Infinity;
    let hi = -Infinity;
    for (const [run, entry] of this.results) {
      for (const role of ROLES) {
        const d = entry.results[role].data;
        if (!d) continue;
        for (const series of [d.raw, d.average]) {
          if (!series || !series.step.length) continue; // average null: a run shorter than its window
          const xs = this.xOf(run, series);
          lo = Math.min(lo, xs[0]);
          hi = Math.max(hi, xs[xs.length - 1]);
        }
      }
    }
    return lo <= hi ? [lo, hi] : null;
  }

  view() {
    const runs = this.sidebar.visibleRuns().filter((r) => this.results.has(r.run)).map((r) => {
      const entry = this.results.get(r.run);
      return {
        run: r.run,
        color: this.colors.get(r.run),
        results: entry.results,
        correlation: entry.correlation,
        xOf: (series) => this.xOf(r.run, series),
        stepToX: (step) => this.stepToX(r.run, step),
      };
    });
    const t = theme();
    const markers = eventMarkers(runs, this.diagnostics, {critical: t.error, warning: t.warning, info: t.muted});
    const noMatch = this.runs.length > 0 && !this.sidebar.filteredRuns().length;
    const groups = this.grouping.mode === 'none' ? [] : this.groupResults.map((g) => ({...g,
      xOf: (steps) => Float64Array.from(steps, (step) => this.stepToX(g.runs[0], step))}));
    return {runs, groups, groupMembersShown: this.grouping.showMembers, showRaw: this.settings.showRaw, band: averagingParams(this.settings).band,
      zoomed: Boolean(this.group.zoom), markers, errorColor: t.error, settings: this.settings,
      emptyReason: noMatch ? `No run matches the filter “${this.settings.runFilter}”.` : 'No runs selected: tick runs in the sidebar.'};
  }

  /** Rebuilds every chart from the loaded data and draws it; records the time taken. */
  render() {
    if (!this.loaded) return;
    const started = performance.now();
    this.group.full = this.fullExtent;
    const view = this.view();
    for (const panel of this.panels) panel.update(view);
    this.correlation.update(view);
    this.group.redraw();
    this.correlation.draw();
    const elapsed = performance.now() - started;
    this.renders += 1;
    this.root.dataset.drawMs = elapsed.toFixed(1);
    this.root.dataset.drawnAt = String(performance.now()); // bench/browser.py: input-to-drawn times
    this.root.dataset.renders = String(this.renders);
  }

  renderBanners() {
    const banners = [];
    if (this.runsError) {
      banners.push(el('div', {class: 'banner error', role: 'alert'},
        el('strong', {text: 'Could not load the run list. '}),
        `${this.runsError.message}. The charts keep the last data; use Refresh to try again.`));
    }
    if (this.sampled) {
      banners.push(el('div', {class: 'banner warning', role: 'status'},
        el('strong', {text: 'Sampled data. '}),
        'TensorBoard has no readable --logdir here (e.g. --grpc_data_provider), so this tab gets its data from ' +
        'TensorBoard\'s data provider, which keeps a random sample of about 1,000 points per tag. Averages, ' +
        'correlations and spikes are computed on that sample, not on every batch. Start TensorBoard with ' +
        '--logdir pointing at the event files to see every step.'));
    }
    for (const run of this.runs) {
      const h = run.health;
      if (!h) continue;
      const problems = [];
      if (h.bad_records) problems.push(`${h.bad_records} damaged record${h.bad_records > 1 ? 's' : ''} skipped`);
      if (h.corrupt_files.length) problems.push(`reading stopped at a corrupt header in ${h.corrupt_files.join(', ')}`);
      if (h.errors.length) problems.push(`unreadable: ${h.errors.join('; ')}`);
      if (problems.length) {
        banners.push(el('div', {class: 'banner warning', role: 'status'},
          el('strong', {text: `Run ${run.run}: `}), `${problems.join('; ')}.`));
      }
    }
    this.banners.replaceChildren(...banners);
  }

  renderEmpty() {
    const none = !this.runs.length;
    this.empty.hidden = !none;
    this.charts.hidden = none;
    this.health.element.hidden = none;
    if (!none) return;
    this.empty.replaceChildren(
      el('h2', {text: 'No scalar data yet'}),
      el('p', {text: 'This tab reads the scalars logged at every batch in the event files under --logdir: ' +
        'a loss, a gradient norm and a learning rate. Nothing has been logged there yet (or the files are still ' +
        'being written: the tab refreshes with TensorBoard).'}),
      el('pre', {class: 'snippet', text: [
        'from tb_batchavg.summary import BatchAverages   # Keras',
        'model.fit(x, y, callbacks=[BatchAverages("logs/run1")])',
        '',
        '# any writer works too, e.g. PyTorch:',
        'writer.add_scalar("train/loss", loss.item(), step)',
        'writer.add_scalar("train/grad_norm", grad_norm, step)',
        'writer.add_scalar("train/learning_rate", lr, step)',
      ].join('\n')}));
  }

  async exportCSV(runName, role) {
    const run = this.runs.find((r) => r.run === runName);
    if (!run) throw new Error('choose a run');
    const tag = this.tagFor(run, role);
    if (!tag) throw new Error(`run ${runName} has no ${ROLE_NAMES[role].toLowerCase()} tag`);
    await api.exportCSV({run: runName, tag, averaging: averagingParams(this.settings, this.windowOf(run, tag))});
  }
}
