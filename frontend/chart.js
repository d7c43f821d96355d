// Line charts on a shared x axis: faint raw lines, averages, bands, markers at x positions with
// hover detail, a crosshair on every chart of the group, drag-to-zoom and double-click reset.
//
// Data model (plain arrays or typed arrays, sorted by x; NaN = gap):
//   series:  {color, x, y, lower?, upper?, alpha?, width?, run?, main?}  (main: the series that sets its run's
//            y range: the average, or the raw values of a run drawn raw only)
//   markers: {x, color, stroke?, from?, to?, detail}   (from..to: a shaded span; detail: text shown
//            in the tooltip when the pointer is near x)
// The tooltip content comes from `describe(x, chart)`, supplied by the panel that owns the chart:
//   {x (snapped position), title, columns, rows: [{color, cells, dataset}], points: [{x, y, color}]}

import {Plot, lowerBound} from './plot.js';
import {AXES, linearScale, logScale} from './scale.js';

const MARKER_HIT_PX = 6;
const OUTLIER_DECADES = 3; // a run whose range ends this many decades beyond the others' is clipped (log y)
const OUTLIER_SPANS = 10; // ... or this many times the runs' typical span beyond them (linear y)
const EDGE_MARK = 5; // size of the marks of off-scale values at the chart's edge

/** The lower median (of a few numbers): with two runs, the healthier one's. */
function lowerMedian(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/** The x axis shared by several charts: its kind, full extent, zoom and hover position. */
export class XGroup {
  constructor({axis = AXES.step, zoomable = true, onZoom = () => {}} = {}) {
    this.charts = [];
    this.axis = axis;
    this.full = null; // [lo, hi] of the data; null: each chart uses its own data extent
    this.zoom = null; // [lo, hi] while zoomed in
    this.zoomable = zoomable;
    this.onZoom = onZoom;
    this.hoverX = null;
    this.hoverChart = null;
  }

  add(chart) {
    this.charts.push(chart);
    chart.group = this;
    chart.xAxis = this.axis;
  }

  setAxis(axis) {
    this.axis = axis;
    for (const chart of this.charts) chart.xAxis = axis;
  }

  domain() {
    return this.zoom || this.full;
  }

  /** Zooms every chart to [lo, hi] (null resets) and tells the owner, which refetches. */
  setZoom(range) {
    if (!this.zoomable || (range && !(range[1] > range[0])) || (!range && !this.zoom)) return;
    this.zoom = range;
    this.redraw();
    this.onZoom(range);
  }

  redraw() {
    for (const chart of this.charts) chart.draw();
  }

  hover(x, chart) {
    this.hoverX = x;
    this.hoverChart = chart;
    for (const c of this.charts) c.drawOverlay();
  }
}

function upperBound(xs, x) {
  let i = lowerBound(xs, x);
  while (i < xs.length && xs[i] <= x) i++;
  return i;
}

function percentile(sorted, q) {
  const pos = q * (sorted.length - 1);
  const i = Math.floor(pos);
  return i + 1 < sorted.length ? sorted[i] + (pos - i) * (sorted[i + 1] - sorted[i]) : sorted[i];
}

export class LineChart extends Plot {
  /**
   * group: the XGroup to join (a private, non-zoomable one when omitted); yDomain: a fixed
   * y range, e.g. [-1, 1]; describe: the tooltip content callback (see top of file).
   */
  constructor({group = null, height, label, yAxis, yDomain = null, describe = null} = {}) {
    super({height, label, yAxis});
    this.series = [];
    this.markers = [];
    this.logY = false;
    this.ignoreOutliers = false;
    this.yDomain = yDomain;
    this.yZoom = null; // [lo, hi] after a y zoom (shift-drag, or drag on the y axis)
    this.yDrag = null;
    this.offscale = []; // [{run, color, above, max, below, min}] of the last drawing
    this.onOffscale = null; // called with this.offscale after each drawing
    this.onYZoom = null; // called when the y zoom is set or reset
    this.describe = describe;
    this.drag = null;
    (group || new XGroup({axis: AXES.number, zoomable: false})).add(this);
    this.bindPointer();
  }

  setData({series = [], markers = []}) {
    this.series = series;
    this.markers = markers;
    this.offscale = []; // until drawn (a chart with nothing to draw keeps none)
    if (this.onOffscale) this.onOffscale(this.offscale);
  }

  /** {logY, ignoreOutliers}: log y axis; y range from each series' 5th-95th percentiles. */
  setOptions(options) {
    Object.assign(this, options);
  }

  dataExtent() {
    let lo = Infinity;
    let hi = -Infinity;
    for (const s of this.series) {
      if (!s.x.length) continue;
      lo = Math.min(lo, s.x[0]);
      hi = Math.max(hi, s.x[s.x.length - 1]);
    }
    return lo <= hi ? [lo, hi] : null;
  }

  /**
   * The y range of the series' points inside [x0, x1], padded. With `ignoreOutliers`, from each
   * series' 5th-95th percentiles. Otherwise a range robust across runs: each run's range is its
   * main series' extent (the average with its band; the raw values when drawn raw only) widened
   * to the 1st-99th percentiles of its other series (its raw cloud); a run whose range ends
   * far beyond the others' (OUTLIER_DECADES on a log axis, OUTLIER_SPANS typical spans on a linear
   * one, against the lower median of the runs) does not stretch the axis: its values beyond are
   * clipped and marked at the edge.
   */
  yExtent([x0, x1], log) {
    const usable = log ? (v) => v > 0 && v < Infinity : Number.isFinite;
    const t = log ? Math.log10 : (v) => v;
    const pad = ([lo, hi]) => {
      if (log) return [lo / 1.15, hi * 1.15];
      const p = (hi - lo) * 0.05 || Math.abs(hi) * 0.05 || 1;
      return [lo - p, hi + p];
    };
    const inView = (s, ys) => {
      const out = [];
      if (!ys) return out;
      const i1 = upperBound(s.x, x1);
      for (let i = lowerBound(s.x, x0); i < i1; i++) if (usable(ys[i])) out.push(ys[i]);
      return out;
    };
    if (this.ignoreOutliers) {
      let lo = Infinity;
      let hi = -Infinity;
      for (const s of this.series) {
        const values = inView(s, s.y);
        if (!values.length) continue;
        const sorted = Float64Array.from(values).sort();
        lo = Math.min(lo, percentile(sorted, 0.05));
        hi = Math.max(hi, percentile(sorted, 0.95));
      }
      return lo <= hi ? pad([lo, hi]) : null;
    }
    const runs = new Map(); // run -> [lo, hi]
    for (const s of this.series) {
      const key = s.run ?? s.color;
      let range = runs.get(key) || [Infinity, -Infinity];
      if (s.main !== false) { // its whole extent (a plain series counts whole too)
        for (const ys of [s.y, s.lower, s.upper]) {
          for (const v of inView(s, ys)) {
            if (v < range[0]) range = [v, range[1]];
            if (v > range[1]) range = [range[0], v];
          }
        }
      } else {
        // A raw cloud counts whole, except values far beyond its 1st-99th percentiles (spikes): those
        // are clipped and marked rather than stretching the axis.
        const values = inView(s, s.y);
        if (values.length) {
          const sorted = Float64Array.from(values).sort();
          const p1 = percentile(sorted, 0.01);
          const p99 = percentile(sorted, 0.99);
          const reach = log ? Math.max(p99 / p1, 1) : Math.max(p99 - p1, 0);
          const low = log ? Math.max(sorted[0], p1 / reach) : Math.max(sorted[0], p1 - reach);
          const high = log ? Math.min(sorted[sorted.length - 1], p99 * reach) : Math.min(sorted[sorted.length - 1], p99 + reach);
          range = [Math.min(range[0], low), Math.max(range[1], high)];
        }
      }
      runs.set(key, range);
    }
    const ranges = [...runs.values()].filter(([lo, hi]) => lo <= hi).map(([lo, hi]) => [t(lo), t(hi)]);
    if (!ranges.length) return null;
    let kept = ranges;
    if (ranges.length > 1) {
      const span = Math.max(lowerMedian(ranges.map(([lo, hi]) => hi - lo)), 1e-12);
      const far = log ? OUTLIER_DECADES : OUTLIER_SPANS * span;
      const top = lowerMedian(ranges.map(([, hi]) => hi));
      const bottom = -lowerMedian(ranges.map(([lo]) => -lo)); // the upper median of the lows
      kept = ranges.map(([lo, hi]) => [lo < bottom - far ? bottom : lo, hi > top + far ? top : hi]);
    }
    const lo = Math.min(...kept.map((r) => r[0]));
    const hi = Math.max(...kept.map((r) => r[1]));
    return pad(log ? [10 ** lo, 10 ** hi] : [lo, hi]);
  }

  computeScales() {
    const b = this.box();
    const xDomain = this.group.domain() || this.dataExtent();
    if (!xDomain) return null;
    let log = this.logY && !this.yDomain;
    let yDomain = this.yDomain || this.yExtent(xDomain, log);
    if (!yDomain && log) {
      log = false; // nothing positive to show on a log axis: fall back to linear
      yDomain = this.yExtent(xDomain, false);
    }
    if (!yDomain) return null;
    if (this.yZoom && !this.yDomain && (!log || this.yZoom[0] > 0)) yDomain = this.yZoom;
    return {
      x: linearScale(xDomain, [b.left, b.right]),
      y: (log ? logScale : linearScale)(yDomain, [b.bottom, b.top]),
    };
  }

  /** Sets (null: resets) this chart's y zoom and redraws. */
  setYZoom(range) {
    this.yZoom = range;
    this.draw();
    if (this.onYZoom) this.onYZoom(range);
  }

  /** Index range of a series worth drawing: the visible points and one neighbour each side. */
  visible(s) {
    const [x0, x1] = this.scales.x.domain;
    return [Math.max(0, lowerBound(s.x, x0) - 1), Math.min(s.x.length, upperBound(s.x, x1) + 1)];
  }

  drawData(ctx, t) {
    const offscale = new Map();
    for (const s of this.series) {
      const [i0, i1] = this.visible(s);
      if (s.lower && s.upper) this.drawBand(ctx, s, i0, i1);
      this.drawLine(ctx, s, i0, i1);
      this.drawOffscale(ctx, s, offscale);
    }
    ctx.globalAlpha = 1;
    this.drawMarkers(ctx, t);
    this.offscale = [...offscale.values()];
    if (this.onOffscale) this.onOffscale(this.offscale);
  }

  /**
   * Marks the values of `s` in view that lie above or below the y range (clipped at the edge): a
   * small triangle in the series' colour at the edge, at the start of each such stretch; counts them.
   */
  drawOffscale(ctx, s, offscale) {
    if (this.yDomain) return;
    const {x, y} = this.scales;
    const b = this.box();
    const [x0, x1] = x.domain;
    const [lo, hi] = y.domain;
    const i1 = upperBound(s.x, x1);
    let side = 0;
    ctx.fillStyle = s.color;
    ctx.globalAlpha = 1;
    for (let i = lowerBound(s.x, x0); i < i1; i++) {
      const v = s.y[i];
      const now = v === null || !Number.isFinite(v) ? 0 : v > hi ? 1 : v < lo && !(y.log && v <= 0) ? -1 : 0;
      if (now) {
        const key = s.run ?? s.color;
        const entry = offscale.get(key) || {run: s.run, color: s.color, above: 0, max: -Infinity, below: 0, min: Infinity};
        if (now > 0) {
          entry.above += 1;
          entry.max = Math.max(entry.max, v);
        } else {
          entry.below += 1;
          entry.min = Math.min(entry.min, v);
        }
        offscale.set(key, entry);
        if (now !== side) {
          const px = x.map(s.x[i]);
          const edge = now > 0 ? b.top : b.bottom;
          ctx.beginPath();
          ctx.moveTo(px - EDGE_MARK, edge + now * -EDGE_MARK * 1.4);
          ctx.lineTo(px + EDGE_MARK, edge + now * -EDGE_MARK * 1.4);
          ctx.lineTo(px, edge);
          ctx.closePath();
          ctx.fill();
        }
      }
      side = now;
    }
  }

  drawLine(ctx, s, i0, i1) {
    const {x, y} = this.scales;
    const b = this.box();
    ctx.strokeStyle = s.color;
    ctx.globalAlpha = s.alpha ?? 1;
    ctx.lineWidth = s.width ?? 1.5;
    ctx.lineJoin = 'round';
    ctx.beginPath();
    let pen = false;
    for (let i = i0; i < i1; i++) {
      const v = s.y[i];
      const py = v === null ? NaN : y.map(v);
      if (!Number.isFinite(py)) {
        pen = false;
        continue;
      }
      const px = x.map(s.x[i]);
      const cy = Math.min(b.bottom, Math.max(b.top, py)); // clipped at the edge, marked by drawOffscale
      if (pen) ctx.lineTo(px, cy);
      else ctx.moveTo(px, cy);
      pen = true;
    }
    ctx.stroke();
  }

  drawBand(ctx, s, i0, i1) {
    const {x, y} = this.scales;
    const b = this.box();
    const clampY = (v) => {
      const p = v === null ? NaN : y.map(v);
      return Number.isFinite(p) ? Math.min(b.bottom, Math.max(b.top, p)) : NaN;
    };
    ctx.fillStyle = s.color;
    ctx.globalAlpha = 0.16;
    let start = -1;
    for (let i = i0; i <= i1; i++) {
      const ok = i < i1 && Number.isFinite(clampY(s.upper[i])) && s.lower[i] !== null && Number.isFinite(s.lower[i]);
      if (ok && start < 0) start = i;
      if (!ok && start >= 0) {
        ctx.beginPath();
        for (let j = start; j < i; j++) ctx.lineTo(x.map(s.x[j]), clampY(s.upper[j]));
        for (let j = i - 1; j >= start; j--) {
          const low = clampY(s.lower[j]);
          ctx.lineTo(x.map(s.x[j]), Number.isFinite(low) ? low : b.bottom);
        }
        ctx.closePath();
        ctx.fill();
        ctx.globalAlpha = 0.85;
        ctx.strokeStyle = s.color;
        ctx.lineWidth = 1;
        ctx.setLineDash([4, 3]);
        for (const edge of [s.upper, s.lower]) {
          ctx.beginPath();
          for (let j = start; j < i; j++) {
            const p = clampY(edge[j]);
            if (Number.isFinite(p)) ctx.lineTo(x.map(s.x[j]), p);
          }
          ctx.stroke();
        }
        ctx.setLineDash([]);
        ctx.globalAlpha = 0.16;
        start = -1;
      }
    }
    ctx.globalAlpha = 1;
  }

  drawMarkers(ctx, t) {
    const {x} = this.scales;
    const b = this.box();
    const [x0, x1] = x.domain;
    for (const m of this.markers) {
      if (m.to > m.from && m.to >= x0 && m.from <= x1) {
        ctx.fillStyle = m.stroke || m.color;
        ctx.globalAlpha = 0.07;
        const left = Math.max(b.left, x.map(m.from));
        ctx.fillRect(left, b.top, Math.min(b.right, x.map(m.to)) - left, b.bottom - b.top);
        ctx.globalAlpha = 1;
      }
      if (m.x < x0 || m.x > x1) continue;
      const px = Math.round(x.map(m.x)) + 0.5;
      ctx.strokeStyle = m.stroke || m.color;
      ctx.globalAlpha = 0.45;
      ctx.setLineDash([3, 3]);
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(px, b.top + 7);
      ctx.lineTo(px, b.bottom);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.globalAlpha = 1;
      ctx.fillStyle = m.color;
      ctx.beginPath();
      ctx.moveTo(px - 5, b.top);
      ctx.lineTo(px + 5, b.top);
      ctx.lineTo(px, b.top + 8);
      ctx.closePath();
      ctx.fill();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = m.stroke || t.fg;
      ctx.stroke();
    }
  }

  drawHover(ctx, t) {
    const {x, y} = this.scales;
    const b = this.box();
    if (this.drag) {
      ctx.fillStyle = t.accent;
      ctx.globalAlpha = 0.18;
      const left = Math.min(this.drag.x0, this.drag.x1);
      ctx.fillRect(left, b.top, Math.abs(this.drag.x1 - this.drag.x0), b.bottom - b.top);
      ctx.globalAlpha = 1;
    }
    if (this.yDrag) {
      ctx.fillStyle = t.accent;
      ctx.globalAlpha = 0.18;
      const top = Math.min(this.yDrag.y0, this.yDrag.y1);
      ctx.fillRect(b.left, top, b.right - b.left, Math.abs(this.yDrag.y1 - this.yDrag.y0));
      ctx.globalAlpha = 1;
    }
    const hoverX = this.group.hoverX;
    if (hoverX === null || hoverX < x.domain[0] || hoverX > x.domain[1]) {
      this.showTooltip(null);
      return;
    }
    const content = this.describe ? this.describe(hoverX, this) : null;
    const px = Math.round(x.map(content && content.x !== undefined ? content.x : hoverX)) + 0.5;
    ctx.strokeStyle = t.crosshair;
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(px, b.top);
    ctx.lineTo(px, b.bottom);
    ctx.stroke();
    for (const p of (content && content.points) || []) {
      const py = y.map(p.y);
      if (!Number.isFinite(py) || py < b.top || py > b.bottom) continue;
      ctx.beginPath();
      ctx.arc(x.map(p.x), py, 3.5, 0, 2 * Math.PI);
      ctx.fillStyle = p.color;
      ctx.fill();
      ctx.strokeStyle = t.bg;
      ctx.stroke();
    }
    if (this.group.hoverChart !== this) {
      this.showTooltip(null);
      return;
    }
    const pointerX = this.hoverPx ? this.hoverPx.x : px;
    const near = this.markers.filter((m) => Math.abs(x.map(m.x) - pointerX) <= MARKER_HIT_PX).map((m) => m.detail);
    if (!content && !near.length) {
      this.showTooltip(null);
      return;
    }
    const shown = content || {rows: []};
    // The tooltip keeps clear of the hovered points and of the markers at the top (plot.showTooltip).
    const avoid = ((content && content.points) || []).map((p) => y.map(p.y)).filter(Number.isFinite);
    if (near.length || this.markers.some((m) => Math.abs(x.map(m.x) - pointerX) < 60)) avoid.push(b.top, b.top + 10);
    this.showTooltip({...shown, notes: [...(shown.notes || []), ...near]}, avoid);
  }

  bindPointer() {
    const area = this.area;
    const clampX = (event) => {
      const b = this.box();
      const left = area.getBoundingClientRect().left;
      return Math.min(b.right, Math.max(b.left, event.clientX - left));
    };
    const clampY = (event) => {
      const b = this.box();
      const top = area.getBoundingClientRect().top;
      return Math.min(b.bottom, Math.max(b.top, event.clientY - top));
    };
    const onYAxis = (event) => {
      const rect = area.getBoundingClientRect();
      const b = this.box();
      const px = event.clientX - rect.left;
      const py = event.clientY - rect.top;
      return px < b.left && py >= b.top && py <= b.bottom;
    };
    area.addEventListener('pointerdown', (event) => {
      if (event.button !== 0 || !this.scales) return;
      // y zoom: shift-drag in the plot, or a drag on the y axis (its labels).
      if (!this.yDomain && (onYAxis(event) || (event.shiftKey && this.pointer(event)))) {
        this.yDrag = {y0: clampY(event), y1: clampY(event)};
        area.setPointerCapture(event.pointerId);
        return;
      }
      if (!this.group.zoomable || !this.pointer(event)) return;
      this.drag = {x0: clampX(event), x1: clampX(event)};
      area.setPointerCapture(event.pointerId);
    });
    area.addEventListener('pointermove', (event) => {
      if (this.yDrag) {
        this.yDrag.y1 = clampY(event);
        this.drawOverlay();
        return;
      }
      if (this.drag) this.drag.x1 = clampX(event);
      const p = this.pointer(event);
      this.hoverPx = p;
      this.group.hover(p && this.scales ? this.scales.x.invert(p.x) : null, this);
    });
    area.addEventListener('pointerup', () => {
      if (this.yDrag) {
        const {y0, y1} = this.yDrag;
        this.yDrag = null;
        if (Math.abs(y1 - y0) > 4) {
          const invert = this.scales.y.invert;
          this.setYZoom([invert(Math.max(y0, y1)), invert(Math.min(y0, y1))]);
        } else {
          this.drawOverlay();
        }
        return;
      }
      if (!this.drag) return;
      const {x0, x1} = this.drag;
      this.drag = null;
      if (Math.abs(x1 - x0) > 4) {
        const invert = this.scales.x.invert;
        this.group.setZoom([invert(Math.min(x0, x1)), invert(Math.max(x0, x1))]);
      } else {
        this.drawOverlay();
      }
    });
    area.addEventListener('pointerleave', () => {
      if (this.drag) return;
      this.hoverPx = null;
      this.group.hover(null, null);
    });
    area.addEventListener('dblclick', (event) => {
      if (onYAxis(event)) this.setYZoom(null); // double-click on the y axis: its range back
      else this.group.setZoom(null);
    });
    area.addEventListener('keydown', (event) => this.onKey(event));
    area.addEventListener('blur', () => {
      if (this.group.hoverChart === this && !this.area.matches(':hover')) this.group.hover(null, null);
    });
  }

  /** Keyboard: arrows move the crosshair, +/- zoom around it, 0 or Escape resets the zoom. */
  onKey(event) {
    if (!this.scales) return;
    const [x0, x1] = this.scales.x.domain;
    const span = x1 - x0;
    const current = this.group.hoverX ?? (x0 + x1) / 2;
    let handled = true;
    if (event.key === 'ArrowLeft' || event.key === 'ArrowRight') {
      const delta = (event.shiftKey ? 0.1 : 0.01) * span * (event.key === 'ArrowLeft' ? -1 : 1);
      const next = Math.min(x1, Math.max(x0, current + delta));
      this.hoverPx = {x: this.scales.x.map(next), y: this.box().top};
      this.group.hover(next, this);
    } else if (event.key === '+' || event.key === '=') {
      this.group.setZoom([current - span / 4, current + span / 4]);
    } else if (event.key === '-') {
      const full = this.group.full;
      const wider = [current - span, current + span];
      this.group.setZoom(full && wider[0] <= full[0] && wider[1] >= full[1] ? null : wider);
    } else if (event.key === '0' || event.key === 'Escape') {
      if (this.yZoom) this.setYZoom(null);
      this.group.setZoom(null);
      if (event.key === 'Escape') this.group.hover(null, null);
    } else {
      handled = false;
    }
    if (handled) event.preventDefault();
  }
}
