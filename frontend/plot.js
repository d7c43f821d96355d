// The canvas plot shared by line and scatter charts: sizing (device pixels, resize), theme
// colours from CSS variables, axes and grid, the hover overlay, tooltip, in-place messages and
// PNG export. Subclasses supply `computeScales()`, `drawData()` and `drawHover()`.

import {el, saveBlob} from './dom.js';
import {AXES, logTicks} from './scale.js';

let themeCache = null;

/** Colours and font of the current theme, read from the CSS variables of style.css. */
export function theme() {
  if (!themeCache) {
    const css = getComputedStyle(document.documentElement);
    const v = (name) => css.getPropertyValue(name).trim();
    themeCache = {
      bg: v('--ba-bg'), fg: v('--ba-fg'), muted: v('--ba-muted'), grid: v('--ba-grid'),
      axis: v('--ba-axis'), accent: v('--ba-accent'), error: v('--ba-error'), warning: v('--ba-warning'),
      crosshair: v('--ba-crosshair'), font: v('--ba-font') || 'sans-serif',
    };
  }
  return themeCache;
}

/** Forgets the cached theme (after a light/dark switch); the caller redraws. */
export function invalidateTheme() {
  themeCache = null;
}

/** Index of the first element of sorted `xs` >= x (xs.length if none). */
export function lowerBound(xs, x) {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the element of sorted `xs` nearest to x (-1 for an empty array). */
export function nearestIndex(xs, x) {
  if (!xs.length) return -1;
  const i = lowerBound(xs, x);
  if (i === 0) return 0;
  if (i === xs.length) return xs.length - 1;
  return x - xs[i - 1] <= xs[i] - x ? i - 1 : i;
}

export class Plot {
  /**
   * height: CSS pixels of the drawing area; label: accessible name of the chart;
   * xAxis / yAxis: kinds from scale.AXES.
   */
  constructor({height = 200, label = '', xAxis = AXES.number, yAxis = AXES.number} = {}) {
    this.base = el('canvas', {class: 'plot-base'});
    this.overlay = el('canvas', {class: 'plot-overlay'});
    this.tooltip = el('div', {class: 'plot-tooltip', hidden: true});
    this.message = el('div', {class: 'plot-message', hidden: true});
    this.area = el('div', {class: 'plot-area', tabindex: '0', role: 'img', 'aria-label': label},
      this.base, this.overlay, this.tooltip, this.message);
    this.area.style.height = `${height}px`;
    this.label = label;
    this.xAxis = xAxis;
    this.yAxis = yAxis;
    this.margin = {left: 60, right: 16, top: 12, bottom: 28};
    this.width = 0;
    this.height = height;
    this.scales = null;
    this.hoverPx = null; // {x, y} of the pointer in CSS pixels, while it is over the plot
    new ResizeObserver(() => this.resize()).observe(this.area);
  }

  /** The plotting box inside the margins, in CSS pixels. */
  box() {
    const m = this.margin;
    return {left: m.left, top: m.top, right: this.width - m.right, bottom: this.height - m.bottom};
  }

  resize() {
    const width = Math.floor(this.area.clientWidth);
    if (width > 0 && width !== this.width) {
      this.width = width;
      this.draw();
    }
  }

  /** Shows text over the plot area (empty state, error); null hides it. Nodes are allowed. */
  setMessage(content, kind = 'info') {
    this.message.hidden = content === null;
    this.message.className = `plot-message ${kind}`;
    if (content !== null) this.message.replaceChildren(typeof content === 'string' ? el('span', {text: content}) : content);
  }

  context(canvas) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(this.width * dpr);
    const h = Math.round(this.height * dpr);
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.width, this.height);
    return ctx;
  }

  /** Redraws everything: axes and data on the base canvas, then the hover overlay. */
  draw() {
    if (!this.width) return;
    const ctx = this.context(this.base);
    this.scales = this.computeScales();
    if (this.scales) {
      const t = theme();
      this.drawGrid(ctx, t);
      const b = this.box();
      ctx.save();
      ctx.beginPath();
      ctx.rect(b.left, b.top - 1, b.right - b.left, b.bottom - b.top + 2);
      ctx.clip();
      this.drawData(ctx, t);
      ctx.restore();
      if (this.drawFrame) this.drawFrame(ctx, t); // outside the plotting box (e.g. a legend in the margin)
    }
    this.drawOverlay();
  }

  drawGrid(ctx, t) {
    const {x, y} = this.scales;
    const b = this.box();
    ctx.font = `11px ${t.font}`;
    ctx.lineWidth = 1;
    const xt = this.xAxis.ticks(x.domain[0], x.domain[1], Math.max(2, Math.floor((b.right - b.left) / 90)));
    const yCount = Math.max(2, Math.floor((b.bottom - b.top) / 30));
    const yt = y.log ? logTicks(y.domain[0], y.domain[1], yCount) : this.yAxis.ticks(y.domain[0], y.domain[1], yCount);
    const yLabel = yt.format || ((v) => this.yAxis.label(v, yt.step));
    ctx.strokeStyle = t.grid;
    ctx.beginPath();
    for (const v of xt.values) {
      const px = Math.round(x.map(v)) + 0.5;
      ctx.moveTo(px, b.top);
      ctx.lineTo(px, b.bottom);
    }
    for (const v of yt.values) {
      const py = Math.round(y.map(v)) + 0.5;
      ctx.moveTo(b.left, py);
      ctx.lineTo(b.right, py);
    }
    ctx.stroke();
    ctx.strokeStyle = t.axis;
    ctx.beginPath();
    ctx.moveTo(b.left + 0.5, b.top);
    ctx.lineTo(b.left + 0.5, b.bottom + 0.5);
    ctx.lineTo(b.right, b.bottom + 0.5);
    ctx.stroke();
    ctx.fillStyle = t.muted;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (const v of xt.values) ctx.fillText(this.xAxis.label(v, xt.step), x.map(v), b.bottom + 5);
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const v of yt.values) ctx.fillText(yLabel(v), b.left - 6, y.map(v));
  }

  /** Redraws the overlay canvas: crosshair, hover dots, selection, and the tooltip. */
  drawOverlay() {
    if (!this.width) return;
    const ctx = this.context(this.overlay);
    if (this.scales) this.drawHover(ctx, theme());
  }

  /**
   * Fills the tooltip from {title, columns, rows: [{color, cells, dataset}], notes} (all text)
   * and places it beside the pointer; null hides it.
   */
  showTooltip(content, avoid = []) {
    if (!content || !this.hoverPx) {
      this.tooltip.hidden = true;
      return;
    }
    const table = el('table', {},
      content.columns ? el('thead', {}, el('tr', {}, el('th'), content.columns.map((c) => el('th', {text: c})))) : null,
      el('tbody', {}, content.rows.map((row) => {
        const swatch = el('span', {class: 'swatch'});
        swatch.style.background = row.color;
        return el('tr', {class: 'tooltip-row', dataset: row.dataset || {}},
          el('td', {}, swatch), row.cells.map((c) => el('td', {text: c})));
      })));
    this.tooltip.replaceChildren(
      content.title ? el('div', {class: 'tooltip-title', text: content.title}) : '',
      content.rows.length ? table : '',
      ...(content.notes || []).map((n) => el('div', {class: 'tooltip-note', text: n})));
    this.tooltip.hidden = false;
    const tw = this.tooltip.offsetWidth;
    const th = this.tooltip.offsetHeight;
    const left = this.hoverPx.x + 16 + tw > this.width ? Math.max(0, this.hoverPx.x - 16 - tw) : this.hoverPx.x + 16;
    // Top or bottom of the plot, whichever covers fewer of the y positions to keep clear (the hovered
    // points, markers at the top): a spike or NaN marker just zoomed to stays visible.
    const top = this.margin.top;
    const bottom = Math.max(top, this.height - this.margin.bottom - th);
    const covered = (y0) => avoid.filter((py) => py >= y0 - 6 && py <= y0 + th + 6).length;
    this.tooltip.style.left = `${left}px`;
    this.tooltip.style.top = `${covered(bottom) < covered(top) ? bottom : top}px`;
  }

  /** Pointer position relative to the plot area, or null outside the plotting box. */
  pointer(event) {
    const rect = this.area.getBoundingClientRect();
    const p = {x: event.clientX - rect.left, y: event.clientY - rect.top};
    const b = this.box();
    return p.x >= b.left && p.x <= b.right && p.y >= b.top - 4 && p.y <= b.bottom + 4 ? p : null;
  }

  /** A PNG of the chart on the theme's background, with a title and legend strip above it. */
  savePNG(filename, title, legend = []) {
    const dpr = window.devicePixelRatio || 1;
    const t = theme();
    const strip = 26;
    const canvas = document.createElement('canvas');
    canvas.width = this.base.width;
    canvas.height = this.base.height + Math.round(strip * dpr);
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = t.bg;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(this.base, 0, Math.round(strip * dpr));
    ctx.scale(dpr, dpr);
    ctx.textBaseline = 'middle';
    ctx.font = `bold 12px ${t.font}`;
    ctx.fillStyle = t.fg;
    ctx.fillText(title, 8, strip / 2);
    let x = 16 + ctx.measureText(title).width;
    ctx.font = `11px ${t.font}`;
    for (const {color, text} of legend) {
      ctx.fillStyle = color;
      ctx.fillRect(x, strip / 2 - 4, 8, 8);
      ctx.fillStyle = t.fg;
      ctx.fillText(text, x + 11, strip / 2);
      x += 24 + ctx.measureText(text).width;
    }
    canvas.toBlob((blob) => saveBlob(blob, filename), 'image/png');
  }
}
