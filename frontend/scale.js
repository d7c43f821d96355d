// Value <-> pixel scales, "nice" tick positions and the labels of each kind of axis.

/** A linear scale from `domain` to pixel `range`; a zero-width domain is widened. */
export function linearScale([d0, d1], [r0, r1]) {
  if (!(d1 > d0)) {
    const pad = Math.abs(d0) * 0.05 || 1;
    d0 -= pad;
    d1 += pad;
  }
  const k = (r1 - r0) / (d1 - d0);
  return {
    log: false,
    domain: [d0, d1],
    map: (v) => r0 + (v - d0) * k,
    invert: (p) => d0 + (p - r0) / k,
  };
}

/** A base-10 log scale; values <= 0 map to NaN (drawn as gaps). */
export function logScale([d0, d1], [r0, r1]) {
  let l0 = Math.log10(d0);
  let l1 = Math.log10(d1);
  if (!(l1 > l0)) {
    l0 -= 0.5;
    l1 += 0.5;
  }
  const k = (r1 - r0) / (l1 - l0);
  return {
    log: true,
    domain: [10 ** l0, 10 ** l1],
    map: (v) => (v > 0 ? r0 + (Math.log10(v) - l0) * k : NaN),
    invert: (p) => 10 ** (l0 + (p - r0) / k),
  };
}

function clean(v) {
  return Number.parseFloat(v.toPrecision(12));
}

/** Step of about span / count: 1, 2 or 5 times a power of ten, whichever is nearest (as d3). */
function niceStep(span, count, integer = false) {
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const error = raw / power;
  const step = power * (error >= Math.sqrt(50) ? 10 : error >= Math.sqrt(10) ? 5 : error >= Math.sqrt(2) ? 2 : 1);
  return integer ? Math.max(1, Math.round(step)) : step;
}

function ticksWithStep(lo, hi, step) {
  const out = [];
  for (let i = Math.ceil(lo / step); i * step <= hi + step * 1e-9 && out.length < 1000; i++) out.push(clean(i * step));
  return out;
}

/** Ticks of a linear axis: {values, step}. */
export function numberTicks(lo, hi, count, integer = false) {
  if (!(hi > lo)) return {values: [lo], step: 1};
  const step = niceStep(hi - lo, count, integer);
  return {values: ticksWithStep(lo, hi, step), step};
}

/**
 * One label format for all the ticks of an axis, so that neighbours never mix notations (0.00105
 * next to 9.5e-4): exponent notation for all when any tick is below 1e-3 or from 1e5, else plain;
 * with just enough significant digits to tell neighbours apart.
 */
export function tickFormat(values) {
  const finite = values.filter((v) => Number.isFinite(v) && v !== 0);
  const exponent = finite.some((v) => Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5);
  let digits = 1;
  const text = (v, d) => (v === 0 ? '0' : exponent ? v.toExponential(d - 1).replace(/\.?0+e/, 'e').replace('e+', 'e') :
    String(Number.parseFloat(v.toPrecision(d))));
  while (digits < 6 && new Set(values.map((v) => text(v, digits))).size < values.length) digits++;
  return (v) => text(v, digits);
}

/**
 * Ticks of a log axis, evenly spread on it: powers of ten (with 2 and 5 when the range spans few
 * decades); a range under about a decade gets ticks evenly spaced in log, rounded to 2 significant
 * digits (never linear ticks, which bunch at the top of a log axis). {values, step: null, format}.
 */
export function logTicks(lo, hi, count) {
  const l0 = Math.ceil(Math.log10(lo) - 1e-9);
  const l1 = Math.floor(Math.log10(hi) + 1e-9);
  const decades = Math.log10(hi / lo);
  const every = Math.max(1, Math.ceil((l1 - l0 + 1) / Math.max(2, count)));
  const multiples = decades <= count / 3 ? [1, 2, 5] : [1];
  let values = [];
  for (let e = l0 - 1; e <= l1; e += e < l0 ? 1 : every) {
    for (const m of multiples) {
      const v = clean(m * 10 ** e);
      if (v >= lo && v <= hi) values.push(v);
    }
  }
  if (values.length < 3) {
    const n = Math.max(3, Math.min(count, 6));
    const a = Math.log10(lo);
    const step = (Math.log10(hi) - a) / n;
    // Enough significant digits that rounding moves a tick by well under its spacing.
    const digits = Math.min(6, Math.max(2, Math.ceil(-Math.log10(10 ** step - 1)) + 2));
    const set = new Set();
    for (let i = 0; i <= n; i++) {
      const v = Number.parseFloat((10 ** (a + (i + 0.5) * step)).toPrecision(digits));
      if (v >= lo && v <= hi) set.add(v);
    }
    values = [...set].sort((p, q) => p - q);
  }
  return {values, step: null, format: tickFormat(values)};
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
  43200, 86400, 172800, 604800, 2592000];

function timeTicks(lo, hi, count, offset = 0) {
  const raw = (hi - lo) / Math.max(1, count);
  if (raw < 1) return numberTicks(lo, hi, count);
  const step = TIME_STEPS.find((s) => s >= raw) || niceStep(hi - lo, count);
  return {values: ticksWithStep(lo + offset, hi + offset, step).map((v) => v - offset), step};
}

/** A compact number: 4 significant digits, exponent notation for very small or large values. */
export function formatNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? 'Inf' : '-Inf';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2).replace(/\.?0+e/, 'e').replace('e+', 'e');
  return String(Number.parseFloat(v.toPrecision(4)));
}

/** A value for the tooltip: 6 significant digits. */
export function formatPrecise(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? 'Inf' : '-Inf';
  const a = Math.abs(v);
  if (v !== 0 && (a >= 1e7 || a < 1e-4)) return v.toExponential(5).replace(/\.?0+e/, 'e').replace('e+', 'e');
  return String(Number.parseFloat(v.toPrecision(6)));
}

function formatStep(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return `${Number.parseFloat((v / 1e6).toPrecision(4))}M`;
  if (a >= 1e3) return `${Number.parseFloat((v / 1e3).toPrecision(4))}k`;
  return String(Math.round(v));
}

/** A duration in seconds: "45s", "12m", "3h20m", "2d4h". */
export function formatDuration(seconds) {
  const sign = seconds < 0 ? '-' : '';
  let s = Math.abs(seconds);
  if (s < 60) return `${sign}${Number.parseFloat(s.toPrecision(3))}s`;
  s = Math.round(s);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) return `${sign}${d}d${h ? `${h}h` : ''}`;
  if (h) return `${sign}${h}h${m ? `${m}m` : ''}`;
  return `${sign}${m}m${sec ? `${sec}s` : ''}`;
}

const pad2 = (n) => String(n).padStart(2, '0');

function formatClock(seconds, step) {
  const date = new Date(seconds * 1000);
  const time = `${pad2(date.getHours())}:${pad2(date.getMinutes())}`;
  if (step !== null && step >= 86400) return `${date.getMonth() + 1}/${date.getDate()}`;
  return step !== null && step < 60 ? `${time}:${pad2(date.getSeconds())}` : time;
}

function formatDateTime(seconds) {
  const date = new Date(seconds * 1000);
  return `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())} ` +
    `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`;
}

/**
 * Axis kinds: `ticks(lo, hi, count)` -> {values, step}; `label(v, step)` for tick labels;
 * `precise(v)` for the tooltip; `name` for the axis title.
 */
export const AXES = {
  number: {name: '', ticks: numberTicks, label: formatNumber, precise: formatPrecise},
  step: {
    name: 'step',
    ticks: (lo, hi, count) => numberTicks(lo, hi, count, true),
    label: formatStep,
    precise: (v) => String(Math.round(v)),
  },
  relative: {name: 'relative time', ticks: timeTicks, label: formatDuration, precise: formatDuration},
  wall: {
    name: 'wall time',
    ticks: (lo, hi, count) => timeTicks(lo, hi, count, -60 * new Date(lo * 1000).getTimezoneOffset()),
    label: formatClock,
    precise: formatDateTime,
  },
  lag: {
    name: 'lag (points)',
    ticks: (lo, hi, count) => numberTicks(lo, hi, count, true),
    label: (v) => String(Math.round(v)),
    precise: (v) => String(Math.round(v)),
  },
};
