// Settings of the tab: defaults for a first visit, validation of anything read back from
// localStorage (it may come from an older version or be edited by hand), persistence, and the
// stable colour of each run.

const STORAGE_KEY = 'tb-batchavg.settings.v1';

// The roles of tb_batchavg/metadata.py (ROLES), copied once here: tests/test_roles_agree.py checks they agree.
export const ROLES = ['loss', 'grad_norm', 'learning_rate'];
export const ROLE_NAMES = {loss: 'Loss', grad_norm: 'Gradient norm', learning_rate: 'Learning rate'};

export const CHOICES = {
  method: [['sma', 'SMA (moving mean)'], ['ema', 'EMA (TensorBoard)'], ['median', 'Rolling median'], ['block', 'Block means']],
  align: [['trailing', 'Trailing'], ['centered', 'Centered']],
  edges: [['valid', 'Full windows only'], ['partial', 'Partial at ends']],
  unit: [['points', 'Points'], ['steps', 'Steps']],
  band: [['none', 'None'], ['std', '± std'], ['minmax', 'Min–max']],
  xAxis: [['step', 'Step'], ['relative', 'Relative time'], ['wall', 'Wall time']],
};

export const LIMITS = {
  window: [1, 10_000_000],
  weight: [0, 0.999],
  corrWindow: [2, 10_000_000],
  maxLag: [0, 10_000],
};

// TensorBoard's run palette (its default colour palette setting: light and dark hex), used in its
// run order so that a run has the colour it has in the other tabs (docs/tab.md, "Colours").
export const PALETTE = [
  {light: '#425066', dark: '#8e98a3'}, // Slate
  {light: '#12b5cb', dark: '#12b5cb'}, // Cyan
  {light: '#e52592', dark: '#e52592'}, // Pink
  {light: '#f9ab00', dark: '#f9ab00'}, // Yellow
  {light: '#9334e6', dark: '#9334e6'}, // Purple
  {light: '#7cb342', dark: '#7cb342'}, // Light green
  {light: '#e8710a', dark: '#e8710a'}, // Orange
];
export const Y_SCALES = [['auto', 'y: auto'], ['log', 'y: log'], ['linear', 'y: linear']];
const HEALTH_SORT_KEYS = ['run', 'status', 'problems', 'precedence', 'events'];

function defaults() {
  // y "auto": log while every shown value is > 0 (loss, gradient norm and learning rate usually are,
  // and span decades), linear (saying why) as soon as one is not; "log" forces it, "linear" too.
  const chart = () => ({yScale: 'auto', ignoreOutliers: false});
  return {
    hiddenRuns: [], // runs the user unticked; runs that appear later are shown
    runFilter: '',
    tags: {loss: '', grad_norm: '', learning_rate: ''}, // '' = the tag detected in each run
    method: 'sma',
    window: null, // null: each run's own default window (autoWindow of its points); else typed for all runs
    weight: 0.6,
    align: 'trailing',
    edges: 'valid',
    unit: 'points',
    band: 'none',
    showRaw: true,
    xAxis: 'step',
    charts: {loss: chart(), grad_norm: chart(), learning_rate: chart()},
    corrWindow: 200,
    maxLag: 50,
    scatterRun: '',
    scatterLog: false,
    healthSort: {key: 'status', descending: true}, // worst runs first
  };
}

const isText = (v) => typeof v === 'string';
const isBool = (v) => typeof v === 'boolean';
const inChoices = (name) => (v) => CHOICES[name].some(([c]) => c === v);
const inLimits = (name, integer) => (v) =>
  typeof v === 'number' && Number.isFinite(v) && (!integer || Number.isInteger(v)) &&
  v >= LIMITS[name][0] && v <= LIMITS[name][1];

const VALID = {
  runFilter: isText,
  method: inChoices('method'),
  window: inLimits('window', true),
  weight: inLimits('weight', false),
  align: inChoices('align'),
  edges: inChoices('edges'),
  unit: inChoices('unit'),
  band: inChoices('band'),
  showRaw: isBool,
  xAxis: inChoices('xAxis'),
  corrWindow: inLimits('corrWindow', true),
  maxLag: inLimits('maxLag', true),
  scatterRun: isText,
  scatterLog: isBool,
};

/** The saved settings merged over the defaults, keeping only valid values. */
export function loadSettings() {
  const settings = defaults();
  let saved = null;
  try {
    saved = JSON.parse(window.localStorage.getItem(STORAGE_KEY) || 'null');
  } catch {
    saved = null; // unreadable or blocked storage: first-visit defaults
  }
  if (!saved || typeof saved !== 'object') return settings;
  for (const [key, valid] of Object.entries(VALID)) if (valid(saved[key])) settings[key] = saved[key];
  const sort = saved.healthSort;
  if (sort && HEALTH_SORT_KEYS.includes(sort.key) && isBool(sort.descending)) settings.healthSort = {key: sort.key, descending: sort.descending};
  if (Array.isArray(saved.hiddenRuns)) settings.hiddenRuns = saved.hiddenRuns.filter(isText);
  for (const role of ROLES) {
    if (saved.tags && isText(saved.tags[role])) settings.tags[role] = saved.tags[role];
    const chart = saved.charts && saved.charts[role];
    if (chart && Y_SCALES.some(([v]) => v === chart.yScale)) settings.charts[role].yScale = chart.yScale;
    else if (chart && chart.logY === false) settings.charts[role].yScale = 'linear'; // saved by an older version
    if (chart && isBool(chart.ignoreOutliers)) settings.charts[role].ignoreOutliers = chart.ignoreOutliers;
  }
  if (saved.window === null) settings.window = null;
  return settings;
}

export function saveSettings(settings) {
  try {
    window.localStorage.setItem(STORAGE_KEY, JSON.stringify(settings));
  } catch {
    // storage full or blocked: settings last for this page only
  }
}

/** A round window of about 1% of a series' points (at least 5, at most its length). */
export function autoWindow(points) {
  const target = Math.max(5, points / 100);
  const nice = [1, 2, 2.5, 5, 10].map((m) => m * 10 ** Math.floor(Math.log10(target)));
  const w = Math.round(nice.reduce((best, v) => (Math.abs(v - target) < Math.abs(best - target) ? v : best)));
  return Math.max(1, Math.min(w, Math.max(1, points)));
}

/**
 * The window of one series: the typed one, or (settings.window null) the auto rule on the series'
 * own points; with unit=steps that many points times the series' cadence (steps per point, when
 * known, else 1), so that the window covers about 1% of the series whatever its logging interval.
 */
export function windowFor(settings, points, cadence = 1) {
  if (settings.window !== null) return settings.window;
  const w = autoWindow(points);
  return settings.unit === 'steps' ? Math.max(1, Math.round(w * cadence)) : w;
}

/**
 * Colours in TensorBoard's way: each run's colour id is its index in TensorBoard's run order
 * (`order`: the run_order route, TensorBoard's /data/runs order), ids kept once given (as
 * TensorBoard keeps them while its page is open), runs missing from `order` after it in name
 * order; colour = palette[id mod 7], its dark variant in dark mode. `ids`: the Map kept between calls.
 */
export function assignColors(ids, order, runNames, dark) {
  for (const run of order) if (!ids.has(run)) ids.set(run, ids.size);
  for (const run of [...runNames].sort()) if (!ids.has(run)) ids.set(run, ids.size);
  return new Map(runNames.map((run) => {
    const c = PALETTE[ids.get(run) % PALETTE.length];
    return [run, dark ? c.dark : c.light];
  }));
}

/** The query parameters of the averaging settings (http_api.md "Averaging parameters"). */
export function averagingParams(settings, window = settings.window) {
  const band = settings.method === 'ema' && settings.band === 'minmax' ? 'std' : settings.band;
  return {
    method: settings.method,
    window,
    weight: settings.weight,
    align: settings.align,
    edges: settings.edges,
    unit: settings.unit,
    band,
  };
}
