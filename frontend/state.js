// Settings of the tab: defaults for a first visit, validation of anything read back from
// localStorage (it may come from an older version or be edited by hand), persistence, and the
// stable colour of each run.

const STORAGE_KEY = 'tb-batchavg.settings.v1';

export const ROLES = ['loss', 'grad_norm', 'learning_rate'];
export const ROLE_NAMES = {loss: 'Loss', grad_norm: 'Gradient norm', learning_rate: 'Learning rate'};

export const CHOICES = {
  method: [['sma', 'SMA (moving mean)'], ['ema', 'EMA (TensorBoard)'], ['median', 'Rolling median'], ['block', 'Block means']],
  align: [['trailing', 'Trailing'], ['centered', 'Centered']],
  edges: [['valid', 'Valid (full windows)'], ['partial', 'Partial (shorter windows)']],
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

// Colour-blind-friendly categorical palette (Tableau 10), then darker and lighter variants.
const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1',
  '#ff9da7', '#9c755f', '#bab0ac', '#2f5a8a', '#c05f00', '#a8323a', '#3f8f89', '#2f7a2a',
  '#b89a1c', '#7f4f73', '#d9707d', '#6d4f3c', '#85807b'];
const MAX_REMEMBERED_COLORS = 500;
const HEALTH_SORT_KEYS = ['run', 'status', 'problems', 'precedence', 'events'];

function defaults() {
  // Log y by default: loss, gradient norm and learning rate are positive and span decades
  // (an exploding run would flatten every other curve on a linear axis).
  const chart = () => ({logY: true, ignoreOutliers: false});
  return {
    hiddenRuns: [], // runs the user unticked; runs that appear later are shown
    runFilter: '',
    tags: {loss: '', grad_norm: '', learning_rate: ''}, // '' = the tag detected in each run
    method: 'sma',
    window: null, // null until the first runs arrive: then ~1% of the longest run
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
    colors: {}, // run -> palette index, so a run keeps its colour across filters and reloads
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
    if (chart && isBool(chart.logY)) settings.charts[role].logY = chart.logY;
    if (chart && isBool(chart.ignoreOutliers)) settings.charts[role].ignoreOutliers = chart.ignoreOutliers;
  }
  if (saved.colors && typeof saved.colors === 'object') {
    for (const [run, index] of Object.entries(saved.colors)) {
      if (Number.isInteger(index) && index >= 0) settings.colors[run] = index;
    }
  }
  return settings;
}

export function saveSettings(settings) {
  try {
    window.localStorage.setItem(STORAGE_KEY, JSON.stringify(settings));
  } catch {
    // storage full or blocked: settings last for this page only
  }
}

/** A round window of about 1% of the longest run's points (at least 5). */
export function autoWindow(points) {
  const target = Math.max(5, points / 100);
  const nice = [1, 2, 2.5, 5, 10].map((m) => m * 10 ** Math.floor(Math.log10(target)));
  return Math.round(nice.reduce((best, v) => (Math.abs(v - target) < Math.abs(best - target) ? v : best)));
}

/** Gives each new run the lowest unused palette slot; returns run -> colour. */
export function assignColors(settings, runNames) {
  const used = new Set(Object.values(settings.colors));
  let next = 0;
  for (const run of runNames) {
    if (run in settings.colors) continue;
    while (used.has(next)) next++;
    settings.colors[run] = next;
    used.add(next);
  }
  const names = Object.keys(settings.colors);
  if (names.length > MAX_REMEMBERED_COLORS) {
    const current = new Set(runNames);
    for (const run of names) if (!current.has(run)) delete settings.colors[run];
  }
  return new Map(runNames.map((run) => [run, PALETTE[settings.colors[run] % PALETTE.length]]));
}

/** The query parameters of the averaging settings (http_api.md "Averaging parameters"). */
export function averagingParams(settings) {
  const band = settings.method === 'ema' && settings.band === 'minmax' ? 'std' : settings.band;
  return {
    method: settings.method,
    window: settings.window,
    weight: settings.weight,
    align: settings.align,
    edges: settings.edges,
    unit: settings.unit,
    band,
  };
}
