// Minimal Batch Averages page: lists runs and draws one averaged loss chart per run.
// (The full interface replaces this module.)
export async function render() {
  const root = document.createElement('div');
  document.body.appendChild(root);
  const response = await fetch('./runs');
  const {runs} = await response.json();
  for (const run of runs) {
    const title = document.createElement('h3');
    title.textContent = run.run;
    root.appendChild(title);
    const tag = run.roles.loss || run.tags[0];
    if (!tag) continue;
    const q = new URLSearchParams({run: run.run, tag, window: '50'});
    const data = await (await fetch('./averages?' + q)).json();
    const canvas = document.createElement('canvas');
    canvas.width = 600;
    canvas.height = 200;
    root.appendChild(canvas);
    const ctx = canvas.getContext('2d');
    const xs = data.raw.step, ys = data.raw.value.filter((v) => v !== null);
    const x0 = xs[0], x1 = xs[xs.length - 1] || 1;
    const y0 = Math.min(...ys), y1 = Math.max(...ys);
    const px = (x) => ((x - x0) / (x1 - x0 || 1)) * 600;
    const py = (y) => 200 - ((y - y0) / (y1 - y0 || 1)) * 200;
    for (const [series, color] of [[data.raw, '#f57c0040'], [data.average, '#f57c00']]) {
      ctx.strokeStyle = color;
      ctx.beginPath();
      series.step.forEach((s, i) => {
        const v = series.value[i];
        if (v !== null) ctx.lineTo(px(s), py(v));
      });
      ctx.stroke();
    }
  }
}
