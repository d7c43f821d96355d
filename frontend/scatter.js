// Scatter plot of paired values coloured by step (early = dark purple, late = yellow), with
// optional log axes and a hover readout of the nearest point.

import {Plot} from './plot.js';
import {AXES, formatPrecise, linearScale, logScale} from './scale.js';

const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37]];
const COLOR_LEVELS = 48;
const HIT_PX = 12;

/** The colour of position t in [0, 1] on the step colour ramp. */
export function rampColor(t) {
  const pos = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(pos));
  const f = pos - i;
  const c = VIRIDIS[i].map((v, k) => Math.round(v + f * (VIRIDIS[i + 1][k] - v)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

const LEVEL_COLORS = Array.from({length: COLOR_LEVELS}, (_, i) => rampColor(i / (COLOR_LEVELS - 1)));

function extent(values, log) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v === null || !Number.isFinite(v) || (log && v <= 0)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!(lo <= hi)) return null;
  if (log) return [lo / 1.1, hi * 1.1];
  const pad = (hi - lo) * 0.05 || Math.abs(hi) * 0.05 || 1;
  return [lo - pad, hi + pad];
}

export class ScatterChart extends Plot {
  /** xName / yName: what the axes hold (shown on the chart and in the tooltip). */
  constructor({height, label, xName, yName}) {
    super({height, label, xAxis: AXES.number, yAxis: AXES.number});
    this.margin = {...this.margin, top: 30}; // the step colour bar sits above the points, not on them
    this.xName = xName;
    this.yName = yName;
    this.points = {x: [], y: [], step: []};
    this.log = false;
    this.area.addEventListener('pointermove', (event) => {
      this.hoverPx = this.pointer(event);
      this.drawOverlay();
    });
    this.area.addEventListener('pointerleave', () => {
      this.hoverPx = null;
      this.drawOverlay();
    });
  }

  /** points: {x, y, step} arrays of equal length (null = non-finite); log: log-log axes. */
  setData(points, log) {
    this.points = points;
    this.log = log;
  }

  computeScales() {
    const xd = extent(this.points.x, this.log);
    const yd = extent(this.points.y, this.log);
    if (!xd || !yd) return null;
    const b = this.box();
    const make = this.log ? logScale : linearScale;
    return {x: make(xd, [b.left, b.right]), y: make(yd, [b.bottom, b.top])};
  }

  stepRange() {
    const steps = this.points.step;
    return [steps[0], steps[steps.length - 1]];
  }

  drawData(ctx, _t) {
    const {x, y} = this.scales;
    const {x: xs, y: ys, step} = this.points;
    const [s0, s1] = this.stepRange();
    const levels = Array.from({length: COLOR_LEVELS}, () => []);
    for (let i = 0; i < xs.length; i++) {
      const px = x.map(xs[i]);
      const py = y.map(ys[i]);
      if (!Number.isFinite(px) || !Number.isFinite(py) || xs[i] === null || ys[i] === null) continue;
      const level = Math.round(((step[i] - s0) / (s1 - s0 || 1)) * (COLOR_LEVELS - 1));
      levels[level].push(px, py);
    }
    ctx.globalAlpha = 0.8;
    levels.forEach((coords, level) => {
      ctx.fillStyle = LEVEL_COLORS[level];
      for (let i = 0; i < coords.length; i += 2) ctx.fillRect(coords[i] - 1.5, coords[i + 1] - 1.5, 3, 3);
    });
    ctx.globalAlpha = 1;
  }

  drawFrame(ctx, t) {
    const [s0, s1] = this.stepRange();
    this.drawLegend(ctx, t, s0, s1);
  }

  drawLegend(ctx, t, s0, s1) {
    const b = this.box();
    const width = 110;
    const left = b.right - width - 4;
    const gradient = ctx.createLinearGradient(left, 0, left + width, 0);
    VIRIDIS.forEach((_, i) => gradient.addColorStop(i / (VIRIDIS.length - 1), rampColor(i / (VIRIDIS.length - 1))));
    ctx.fillStyle = gradient;
    const top = b.top - 27;
    ctx.fillRect(left, top, width, 6);
    ctx.fillStyle = t.muted;
    ctx.font = `10px ${t.font}`;
    ctx.textBaseline = 'top';
    ctx.textAlign = 'left';
    ctx.fillText(AXES.step.label(s0), left, top + 8);
    ctx.textAlign = 'center';
    ctx.fillText('step', left + width / 2, top + 8);
    ctx.textAlign = 'right';
    ctx.fillText(AXES.step.label(s1), left + width, top + 8);
    ctx.fillText(`${this.xName} →`, b.right, b.bottom - 14);
    ctx.textAlign = 'left';
    ctx.fillText(`↑ ${this.yName}`, b.left + 4, b.top - 14);
  }

  drawHover(ctx, t) {
    if (!this.hoverPx) {
      this.showTooltip(null);
      return;
    }
    const {x, y} = this.scales;
    const {x: xs, y: ys, step} = this.points;
    let best = -1;
    let bestDistance = HIT_PX * HIT_PX;
    for (let i = 0; i < xs.length; i++) {
      const dx = x.map(xs[i]) - this.hoverPx.x;
      const dy = y.map(ys[i]) - this.hoverPx.y;
      const d = dx * dx + dy * dy;
      if (d < bestDistance) {
        bestDistance = d;
        best = i;
      }
    }
    if (best < 0) {
      this.showTooltip(null);
      return;
    }
    const [s0, s1] = this.stepRange();
    const color = rampColor((step[best] - s0) / (s1 - s0 || 1));
    ctx.beginPath();
    ctx.arc(x.map(xs[best]), y.map(ys[best]), 5, 0, 2 * Math.PI);
    ctx.strokeStyle = t.fg;
    ctx.lineWidth = 1.5;
    ctx.stroke();
    this.showTooltip({
      title: `step ${step[best]}`,
      rows: [{color, cells: [`${this.xName} ${formatPrecise(xs[best])}`, `${this.yName} ${formatPrecise(ys[best])}`]}],
    });
  }
}
