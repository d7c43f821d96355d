// Opens the Batch Averages tab in Debian's firefox-esr, driven by puppeteer-core over WebDriver
// BiDi (no downloaded browser), waits for the loss chart's canvas to be drawn and prints one JSON
// line: {drawn, runs, coloured, errors}. Run by tests/test_firefox.py:
//     node tests/firefox_smoke.mjs http://127.0.0.1:PORT
/* global document, window -- the functions given to waitForFunction and evaluate run in the page */
import puppeteer from 'puppeteer-core';

const base = process.argv[2];
const TIMEOUT = 60000;
const errors = [];

const browser = await puppeteer.launch({
  browser: 'firefox',
  executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
  headless: true,
  protocolTimeout: TIMEOUT,
});
try {
  const page = await browser.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(String(error)));
  await page.setViewport({width: 1280, height: 800});
  await page.goto(`${base}/#batchavg`, {timeout: TIMEOUT});
  const frameElement = await page.waitForSelector("iframe[src*='plugin_entry.html?name=batchavg']", {timeout: TIMEOUT});
  const frame = await frameElement.contentFrame();
  // Drawn: the tab says it rendered and is ready, and the loss chart's canvas holds coloured pixels.
  await frame.waitForFunction(() => {
    const root = document.getElementById('batchavg');
    return root !== null && Number(root.dataset.renders || 0) > 0 && root.dataset.state === 'ready';
  }, {timeout: TIMEOUT, polling: 100});
  const result = await frame.evaluate(() => {
    const canvas = document.querySelector('[data-role=loss] canvas.plot-base');
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let coloured = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 0 && Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 25) coloured++;
    }
    return {
      drawn: document.getElementById('batchavg').dataset.state,
      runs: [...document.querySelectorAll('.run-name')].map((e) => e.textContent),
      series: window.batchavg.panels[0].chart.series.map((s) => [s.run, s.x.length]),
      coloured,
    };
  });
  console.log(JSON.stringify({...result, errors}));
} finally {
  await browser.close();
}
