"""The Batch Averages tab in a real browser against a real `tensorboard` process.

Chromium from Debian (/usr/bin/chromium, never a downloaded browser) is driven by Playwright.
One tensorboard serves generated training-like logs for the whole module (tests share one page
and run in file order); a second one checks --path_prefix. Screenshots go to artifacts/.
"""

import hashlib
import json
import math
import os
import statistics
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests import helpers

# Drives Debian's Chromium (make chromium).
pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
VIEWPORT = {"width": 1280, "height": 800}

N = 3000  # points per run: more than the 2,000 the tab asks for, so responses are reduced
XSS = "<img src=x onerror=alert(1)>"
NAN_RUN = "run_3"
NONFINITE = {700: np.nan, 1500: np.nan, 2200: np.inf}
NO_GRAD = "no_gradnorm"
SPIKE_RUN, SPIKE_STEP = "run_5", 1800
PLAIN_RUNS = ["run_%d" % i for i in range(9)]
TEN_RUNS = PLAIN_RUNS + [XSS]
SHARED_CHARTS = ["loss", "grad_norm", "learning_rate"]

# Pixels clearly coloured (not the grey grid, axes and labels, chroma under 10) on a chart's base
# canvas; TensorBoard's first run colour, slate #425066, has a chroma of 36.
COLOURED_PIXELS_JS = """([selector, index]) => {
  const canvas = document.querySelectorAll(selector)[index];
  const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0 && Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 25) n++;
  }
  return n;
}"""

TOOLTIP_HIDDEN_JS = "(role) => document.querySelector(`[data-role=${role}] .plot-tooltip`).hidden"

RENDERED_JS = """(after) => {
  const root = document.getElementById('batchavg');
  return root !== null && Number(root.dataset.renders || 0) > after && root.dataset.state === 'ready';
}"""


def require_chromium():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is not installed at %s (`make chromium` installs it)" % CHROMIUM)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser_logs")
    for i, name in enumerate(TEN_RUNS):
        columns = helpers.training_like(N, seed=i)
        if name == NAN_RUN:
            for step, value in NONFINITE.items():
                columns["train/grad_norm"][step] = value
        if name == SPIKE_RUN:
            columns["train/loss"][SPIKE_STEP] *= 20
        (root / name).mkdir()
        helpers.write_scalars(str(root / name), columns)
    columns = helpers.training_like(N, seed=99)
    del columns["train/grad_norm"]
    (root / NO_GRAD).mkdir()
    helpers.write_scalars(str(root / NO_GRAD), columns)
    return root


class Tab:
    """The plugin's iframe inside a TensorBoard page, plus the HTTP API for reference values."""

    def __init__(self, page, base):
        self.page = page
        self.base = base
        self.dialogs = []
        self.requests = []
        page.on("dialog", self._on_dialog)
        page.on("request", lambda r: self.requests.append(r.url))
        self.frame = None

    def _on_dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self):
        self.page.goto(self.base + "/#batchavg")
        self.attach()

    def attach(self):
        handle = self.page.wait_for_selector(
            "iframe[src*='plugin_entry.html?name=batchavg']", state="attached", timeout=60000
        )
        self.frame = handle.content_frame()
        self.frame.wait_for_function(RENDERED_JS, arg=0, timeout=60000)

    def eval(self, expression, arg=None):
        return self.frame.evaluate(expression, arg)

    def renders(self):
        return int(self.eval("Number(document.getElementById('batchavg').dataset.renders)"))

    def wait_render(self, after, timeout=30000):
        self.frame.wait_for_function(RENDERED_JS, arg=after, timeout=timeout)

    def act(self, action):
        """Runs `action` (which must cause a fetch and a redraw) and waits for the redraw."""
        before = self.renders()
        action()
        self.wait_render(before)

    def show_runs(self, regex):
        box = self.frame.get_by_label("Filter runs (regex)")
        if box.input_value() != regex:
            self.act(lambda: box.fill(regex))

    def coloured_pixels(self, role, index=0):
        """Coloured pixels on the index-th chart canvas of a card (`data-role`)."""
        return self.frame.evaluate(COLOURED_PIXELS_JS, ["[data-role=%s] canvas.plot-base" % role, index])

    def fingerprint(self, role):
        url = self.eval("(s) => document.querySelector(s).toDataURL()", "[data-role=%s] canvas.plot-base" % role)
        return hashlib.sha256(url.encode()).hexdigest()

    def plot_box(self, role):
        """A metric chart's plotting box (inside its margins) in page coordinates."""
        area = self.frame.locator("[data-role=%s] .plot-area" % role).bounding_box()
        margin = self.eval("%s.margin" % CHARTS_JS[role])
        return {
            "left": area["x"] + margin["left"],
            "right": area["x"] + area["width"] - margin["right"],
            "top": area["y"] + margin["top"],
            "bottom": area["y"] + area["height"] - margin["bottom"],
        }

    def domain(self, chart):
        """The x domain a chart (a JS expression from CHARTS_JS) was last drawn with."""
        return self.eval("%s.scales.x.domain" % chart)

    def api(self, route, **params):
        url = "%s/data/plugin/batchavg/%s?%s" % (self.base, route, urllib.parse.urlencode(params))
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.read()

    def api_json(self, route, **params):
        return helpers.strict_json(self.api(route, **params))

    def screenshot(self, name):
        self.page.screenshot(path=str(ARTIFACTS / name))


CHARTS_JS = {
    "loss": "window.batchavg.panels[0].chart",
    "grad_norm": "window.batchavg.panels[1].chart",
    "learning_rate": "window.batchavg.panels[2].chart",
    "rolling": "window.batchavg.correlation.rolling",
}


@pytest.fixture(scope="module")
def tab(browser, server):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    tab = Tab(page, server)
    tab.open()
    yield tab
    context.close()


def test_runs_listed_and_every_chart_drawn(tab):
    names = tab.frame.locator(".run-name").all_text_contents()
    assert sorted(names) == sorted(TEN_RUNS + [NO_GRAD])
    tab.show_runs("^run_[0-2]$")
    assert tab.frame.locator(".run-name").all_text_contents() == ["run_0", "run_1", "run_2"]
    for role in SHARED_CHARTS:
        assert tab.coloured_pixels(role) > 500, role
    for index in range(3):  # rolling correlation, lag chart, scatter
        assert tab.coloured_pixels("correlation", index=index) > 300, index
    rows = tab.frame.locator(".corr-table tbody tr")
    assert rows.count() == 3
    reference = tab.api_json("correlation", run="run_1")
    cells = rows.nth(1).locator("td").all_text_contents()
    assert cells[:3] == [str(reference["n"]), "%.3f" % reference["pearson"], "%.3f" % reference["spearman"]]
    assert cells[5].startswith(str(reference["lag"]["best"]))
    tab.screenshot("tab_three_runs.png")


def test_changing_the_window_fetches_and_draws_a_different_curve(tab):
    tab.show_runs("^run_0$")
    before = tab.fingerprint("loss")
    number = tab.frame.get_by_label("Window (points)")
    with tab.page.expect_request(lambda r: "/averages?" in r.url and "window=300" in r.url):
        tab.act(lambda: (number.fill("300"), number.press("Enter")))
    params = tab.eval("window.batchavg.results.get('run_0').results.loss.data.params")
    assert params["window"] == 300
    assert tab.fingerprint("loss") != before
    average = tab.eval("window.batchavg.results.get('run_0').results.loss.data.average")
    assert average["count"] == N - 300 + 1  # valid edges: the first 299 points have no full window


def test_slider_moves_are_debounced(tab):
    tab.show_runs("^run_0$")
    start = len(tab.requests)
    before = tab.renders()
    # A drag: eight slider positions in quick succession (in one task, so no pause can split them).
    tab.frame.get_by_label("Window slider").evaluate("""(slider) => {
      for (let i = 1; i <= 8; i++) {
        slider.value = String(Number(slider.value) + 10);
        slider.dispatchEvent(new Event('input', {bubbles: true}));
      }
    }""")
    tab.wait_render(before)
    shown = int(tab.frame.get_by_label("Window (points)").input_value())
    # The drawn loss is the last position's: the one debounced call has fired (nothing is pending).
    tab.frame.wait_for_function(
        "(w) => window.batchavg.results.get('run_0').results.loss.data.params.window === w", arg=shown
    )
    loss_requests = [u for u in tab.requests[start:] if "/averages?" in u and "train%2Floss" in u]
    assert len(loss_requests) == 1, loss_requests
    assert "window=%d&" % shown in loss_requests[0]


def test_tooltip_values_equal_the_api_values(tab):
    tab.show_runs("^run_[0-2]$")
    box = tab.plot_box("loss")
    for fraction in (0.23, 0.61, 0.97):
        tab.page.mouse.move(box["left"] + fraction * (box["right"] - box["left"]), (box["top"] + box["bottom"]) / 2)
        rows = tab.eval(
            "[...document.querySelectorAll('[data-role=loss] .tooltip-row')].map(r => "
            "({...r.dataset, cells: [...r.querySelectorAll('td')].map(c => c.textContent)}))"
        )
        assert [r["run"] for r in rows] == ["run_0", "run_1", "run_2"]
        for row in rows:
            params = tab.eval("(run) => window.batchavg.results.get(run).results.loss.data.params", row["run"])
            step = int(row["step"])
            at_step = tab.api_json("averages", run=row["run"], tag="train/loss", start=step, end=step, **params)
            assert at_step["raw"]["step"] == [step]
            assert float(row["raw"]) == at_step["raw"]["value"][0]
            assert math.isclose(float(row["cells"][3]), at_step["raw"]["value"][0], rel_tol=1e-5)
            average_step = int(row["averageStep"])
            at_average = tab.api_json(
                "averages", run=row["run"], tag="train/loss", start=average_step, end=average_step, **params
            )
            assert float(row["average"]) == at_average["average"]["value"][0]
            assert math.isclose(float(row["cells"][4].split(" ")[0]), at_average["average"]["value"][0], rel_tol=1e-5)
    tab.screenshot("tooltip.png")
    tab.page.mouse.move(0, 0)


def test_nan_and_inf_are_marked_on_the_gradient_norm_chart(tab):
    tab.show_runs("^%s$" % NAN_RUN)
    markers = tab.eval("window.batchavg.panels[1].chart.markers.map(m => m.x)")
    assert markers == sorted(NONFINITE)
    assert "3 NaN/Inf values" in tab.frame.locator("[data-role=grad_norm] .notes").text_content()
    box = tab.plot_box("grad_norm")
    x = tab.eval("() => { const c = window.batchavg.panels[1].chart; return c.scales.x.map(1500); }")
    area = tab.frame.locator("[data-role=grad_norm] .plot-area").bounding_box()
    tab.page.mouse.move(area["x"] + x, box["top"] + 20)
    note = tab.frame.locator("[data-role=grad_norm] .tooltip-note").all_text_contents()
    assert "%s: NaN/Inf logged at step 1500" % NAN_RUN in note
    tab.page.mouse.move(0, 0)


def test_zoom_narrows_every_chart_and_fetches_full_detail(tab):
    tab.show_runs("^run_[01]$")
    full = tab.domain(CHARTS_JS["loss"])
    box = tab.plot_box("loss")
    y = (box["top"] + box["bottom"]) / 2
    width = box["right"] - box["left"]
    start = len(tab.requests)
    before = tab.renders()
    tab.page.mouse.move(box["left"] + 0.30 * width, y)
    tab.page.mouse.down()
    tab.page.mouse.move(box["left"] + 0.38 * width, y, steps=4)
    tab.page.mouse.move(box["left"] + 0.45 * width, y, steps=4)
    tab.page.mouse.up()
    tab.wait_render(before)
    domains = {name: tab.domain(chart) for name, chart in CHARTS_JS.items()}
    zoom = domains["loss"]
    assert all(d == zoom for d in domains.values()), domains
    assert full[0] < zoom[0] < zoom[1] < full[1]
    assert zoom[1] - zoom[0] < 0.2 * (full[1] - full[0])
    zoomed = [
        urllib.parse.parse_qs(urllib.parse.urlparse(u).query)
        for u in tab.requests[start:]
        if "/averages?" in u or "/correlation?" in u
    ]
    assert zoomed and all("start" in q and "end" in q for q in zoomed)
    raw = tab.eval("window.batchavg.results.get('run_0').results.loss.data.raw")
    steps = np.array(raw["step"])
    assert raw["count"] == len(steps) < N  # every point of the range, none dropped
    assert np.all(np.diff(steps) == 1)
    assert steps[0] <= math.ceil(zoom[0]) and steps[-1] >= math.floor(zoom[1])
    tab.screenshot("zoomed.png")

    # Refresh keeps the zoom; double-click resets it on every chart.
    tab.act(lambda: tab.frame.get_by_role("button", name="Refresh").click())
    assert tab.domain(CHARTS_JS["grad_norm"]) == zoom
    tab.act(lambda: tab.frame.locator("[data-role=grad_norm] .plot-area").dblclick(position={"x": 300, "y": 60}))
    for chart in CHARTS_JS.values():
        assert tab.domain(chart) == full


def test_keyboard_zoom_on_a_focused_chart(tab):
    tab.show_runs("^run_0$")
    full = tab.domain(CHARTS_JS["loss"])
    area = tab.frame.locator("[data-role=learning_rate] .plot-area")
    area.focus()
    tab.act(lambda: area.press("+"))
    zoomed = tab.domain(CHARTS_JS["loss"])
    assert zoomed[1] - zoomed[0] == pytest.approx((full[1] - full[0]) / 2)
    tab.act(lambda: area.press("0"))
    assert tab.domain(CHARTS_JS["loss"]) == full


def test_csv_and_png_downloads(tab, tmp_path):
    tab.show_runs("^run_[01]$")
    tab.frame.get_by_label("Run", exact=True).select_option("run_1")
    tab.frame.get_by_label("Series", exact=True).select_option("loss")
    with tab.page.expect_download() as info:
        tab.frame.get_by_role("button", name="Download CSV").click()
    download = info.value
    path = tmp_path / "download.csv"
    download.save_as(path)
    params = tab.eval("window.batchavg.results.get('run_1').results.loss.data.params")
    expected = tab.api("export", run="run_1", tag="train/loss", format="csv", **params)
    content = path.read_bytes()
    assert content == expected
    lines = content.decode().splitlines()
    assert lines[0] == "step,wall_time,value,average" and len(lines) == N + 1
    assert download.suggested_filename == "run_1_train_loss_sma%d.csv" % params["window"]

    with tab.page.expect_download() as info:
        tab.frame.locator("[data-role=grad_norm]").get_by_role("button", name="PNG").click()
    png = tmp_path / "chart.png"
    info.value.save_as(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert info.value.suggested_filename == "grad_norm.png"


def test_a_hostile_run_name_is_shown_as_text_and_runs_nothing(tab):
    tab.show_runs("img")
    assert tab.frame.locator(".run-name").all_text_contents() == [XSS]
    assert tab.frame.locator(".corr-table tbody th").all_text_contents() == [XSS]
    assert tab.frame.locator("#batchavg select option", has_text=XSS).count() >= 2  # export and scatter pickers
    box = tab.plot_box("loss")
    tab.page.mouse.move((box["left"] + box["right"]) / 2, (box["top"] + box["bottom"]) / 2)
    assert tab.eval("document.querySelector('[data-role=loss] .tooltip-row').dataset.run") == XSS
    assert tab.frame.locator("[data-role=loss] .tooltip-row td").nth(1).text_content() == XSS
    assert tab.coloured_pixels("loss") > 1000  # its data loaded: the name went through the URL intact
    tab.page.mouse.move(0, 0)
    tab.frame.wait_for_function(TOOLTIP_HIDDEN_JS, arg="loss")
    assert tab.frame.locator("img").count() == 0
    assert tab.page.locator("img").count() == 0
    assert tab.dialogs == []


def test_missing_gradient_norm_shows_how_to_log_one(tab):
    tab.show_runs("^%s$" % NO_GRAD)
    message = tab.frame.locator("[data-role=grad_norm] .plot-message")
    assert message.is_visible()
    assert "No gradient-norm tag" in message.text_content()
    assert "BatchAverages" in message.locator("pre").text_content()
    assert tab.coloured_pixels("loss") > 1000
    assert tab.frame.locator("[data-role=correlation] .plot-message").first.is_visible()
    tab.screenshot("no_gradnorm.png")


def test_a_failed_request_shows_its_message_in_place(tab):
    tab.show_runs("^run_[01]$")
    pattern = "**/averages?run=run_1&tag=train%2Floss&*"

    def fail(route):
        route.fulfill(status=500, content_type="application/json", body=json.dumps({"error": "simulated failure"}))

    tab.page.route(pattern, fail)
    try:
        tab.act(lambda: tab.frame.get_by_role("button", name="Refresh").click())
        notes = tab.frame.locator("[data-role=loss] .notes").text_content()
        assert "run_1: simulated failure" in notes
        assert tab.coloured_pixels("loss") > 1000  # run_0 still drawn
        assert tab.coloured_pixels("grad_norm") > 1000
        assert tab.eval("window.batchavg.results.get('run_1').results.grad_norm.data.run") == "run_1"
    finally:
        tab.page.unroute(pattern, fail)
    tab.act(lambda: tab.frame.get_by_role("button", name="Refresh").click())
    assert "simulated failure" not in tab.frame.locator("[data-role=loss] .notes").text_content()


def test_sampled_data_no_scalars_and_unreachable_server_states(tab):
    tab.show_runs("^run_0$")
    pattern = "**/data/plugin/batchavg/runs"
    state = {}

    def runs_route(route):
        if state["mode"] == "fail":
            route.fulfill(status=503, body="down for maintenance")
            return
        body = json.loads(route.fetch().text())
        if state["mode"] == "sampled":
            body["sampled"] = True
        else:
            body["runs"] = []
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    tab.page.route(pattern, runs_route)
    refresh = tab.frame.get_by_role("button", name="Refresh")
    try:
        state["mode"] = "sampled"
        tab.act(refresh.click)
        assert "Sampled data" in tab.frame.locator(".banner").text_content()
        assert "1,000 points per tag" in tab.frame.locator(".banner").text_content()

        state["mode"] = "fail"
        refresh.click()
        tab.frame.wait_for_selector(".banner.error")
        assert "Could not load the run list" in tab.frame.locator(".banner.error").text_content()
        assert tab.coloured_pixels("loss") > 1000  # the last data stays on screen

        state["mode"] = "empty"
        tab.act(refresh.click)
        assert tab.frame.locator(".card.empty").is_visible()
        assert "No scalar data yet" in tab.frame.locator(".card.empty").text_content()
        assert not tab.frame.locator(".charts").is_visible()
    finally:
        tab.page.unroute(pattern, runs_route)
    tab.act(refresh.click)
    assert tab.frame.locator(".banner").count() == 0
    assert tab.frame.locator(".charts").is_visible()


def test_stale_responses_are_discarded(tab):
    tab.show_runs("^run_0$")
    # Responses for window=7 arrive 1.5 s late and ignore the abort: the window=9 result must win.
    # Each late response counts itself once the tab has read its body (and so has had it to discard).
    tab.eval("""() => {
      const original = window.fetch;
      window.__late = {started: 0, read: 0};
      const late = (url, options) => {
        window.__late.started++;
        return new Promise((resolve) => setTimeout(resolve, 1500))
          .then(() => original(url, {...options, signal: undefined}))
          .then((response) => {
            const json = response.json.bind(response);
            response.json = () => json().then((body) => { window.__late.read++; return body; });
            return response;
          });
      };
      window.fetch = (url, options) => String(url).includes('window=7&') ? late(url, options) : original(url, options);
      window.__restoreFetch = () => { window.fetch = original; };
    }""")
    number = tab.frame.get_by_label("Window (points)")
    try:
        number.fill("7")
        number.press("Enter")
        tab.act(lambda: (number.fill("9"), number.press("Enter")))
        tab.frame.wait_for_function("() => window.__late.started > 0 && window.__late.read === window.__late.started")
        assert tab.eval("window.batchavg.results.get('run_0').results.loss.data.params.window") == 9
        assert tab.eval("document.getElementById('batchavg').dataset.state") == "ready"
    finally:
        tab.eval("window.__restoreFetch()")


STATUS_RANK = {"diverged": 3, "warning": 2, "ok": 1}


def health_rows(tab):
    tab.frame.wait_for_function("""() => document.querySelectorAll('.health-table tbody tr').length > 0 &&
      ![...document.querySelectorAll('.health-table tbody td')].some((td) => td.textContent === 'checking…')""")
    return tab.eval("""[...document.querySelectorAll('.health-table tbody tr')].map((tr) =>
      [tr.dataset.run, tr.querySelector('.status').textContent])""")


def test_health_table_sorts_runs_and_a_click_zooms_every_chart_to_the_event(tab):
    tab.show_runs("^run_[3-6]$")
    rows = health_rows(tab)
    assert sorted(run for run, _ in rows) == ["run_3", "run_4", "run_5", "run_6"]
    for run, status in rows:
        assert status == tab.api_json("diagnostics", run=run)["status"]
    ranks = [STATUS_RANK[status] for _, status in rows]
    assert ranks == sorted(ranks, reverse=True)  # worst first by default
    assert dict(rows)[SPIKE_RUN] == "warning" and dict(rows)["run_4"] == "ok"

    tab.frame.locator(".health-table thead button", has_text="Run").click()
    assert [run for run, _ in health_rows(tab)] == ["run_3", "run_4", "run_5", "run_6"]
    assert tab.frame.locator(".health-table thead th").first.get_attribute("aria-sort") == "ascending"
    tab.frame.locator(".health-table thead button", has_text="Run").click()
    assert [run for run, _ in health_rows(tab)] == ["run_6", "run_5", "run_4", "run_3"]

    spike = next(e for e in tab.api_json("diagnostics", run=SPIKE_RUN)["events"] if e["kind"] == "loss_spike")
    assert spike["start"] <= SPIKE_STEP <= spike["end"]
    markers = tab.eval("window.batchavg.panels[0].chart.markers.map((m) => [m.x, m.detail])")
    assert [SPIKE_STEP, "%s: %s" % (SPIKE_RUN, spike["detail"])] in markers

    # Untick the run, then click its event: the run comes back and every chart zooms to the spike.
    tab.act(lambda: tab.frame.locator(".run-item", has_text=SPIKE_RUN).locator("input").uncheck())
    full = tab.domain(CHARTS_JS["loss"])
    event = tab.frame.locator(".health-table tr[data-run=%s] button.event" % SPIKE_RUN, has_text="loss spike")
    before = tab.renders()
    event.click()
    tab.frame.wait_for_function(
        """(after) => window.batchavg.group.zoom !== null &&
      window.batchavg.renders > after && document.getElementById('batchavg').dataset.state === 'ready'""",
        arg=before,
    )
    assert tab.frame.locator(".run-item", has_text=SPIKE_RUN).locator("input").is_checked()
    domains = [tab.domain(chart) for chart in CHARTS_JS.values()]
    assert all(d == domains[0] for d in domains)
    lo, hi = domains[0]
    assert lo < spike["start"] <= spike["end"] < hi and hi - lo < 0.1 * (full[1] - full[0])
    raw = tab.eval("window.batchavg.results.get('%s').results.loss.data.raw" % SPIKE_RUN)
    assert SPIKE_STEP in raw["step"]  # full detail around the event
    tab.screenshot("health_zoomed.png")
    tab.act(lambda: tab.frame.get_by_role("button", name="Reset zoom").click())


def test_draw_time_of_ten_runs_by_three_charts(tab):
    """Ten runs on three charts are drawn: every run's raw values and average as one series each,
    with every point the tab holds (the time is printed for the record, not asserted: BENCHMARKS.md
    has the measured interactions)."""
    tab.show_runs("^(?!%s$)" % NO_GRAD)
    assert len(tab.frame.locator(".run-item input:checked").all()) == 10
    first = float(tab.eval("document.getElementById('batchavg').dataset.drawMs"))
    assert math.isfinite(first) and first > 0
    held = tab.eval(HELD_SERIES_JS, SHARED_CHARTS)
    before = [sorted(map(tuple, tab.eval(SERIES_DRAWN_JS, i))) for i in range(len(SHARED_CHARTS))]
    again = []
    for _ in range(5):
        again.append(
            tab.eval("() => { const t = performance.now(); window.batchavg.render(); return performance.now() - t; }")
        )
    points = 0
    for index, role in enumerate(SHARED_CHARTS):
        drawn = sorted(map(tuple, tab.eval(SERIES_DRAWN_JS, index)))
        expected = sorted(tuple(series) for series in held[role] if series[2] > 0)
        assert {run for run, _, _ in expected} == set(TEN_RUNS), role
        assert drawn == expected, role
        assert drawn == before[index], role  # a redraw draws the same series
        points += sum(n for _, _, n in drawn)
        assert tab.coloured_pixels(role) > 500
    # The loss and gradient norm are averaged (a curve per run beside its raw values).
    assert (
        sum(kind == "average" for _, kind, _ in before[0]) == sum(kind == "average" for _, kind, _ in before[1]) == 10
    )
    print(
        "\ndraw time, 10 runs x 3 charts (+ correlation panel), %d points: %.1f ms after the data arrived; "
        "redraws %s ms (median %.1f ms)"
        % (points, first, ", ".join("%.1f" % t for t in again), statistics.median(again))
    )
    tab.screenshot("ten_runs.png")


# Per role, the series the tab holds for each shown run: [run, "raw" | "average", points].
HELD_SERIES_JS = """(roles) => Object.fromEntries(roles.map((role) => [role,
  window.batchavg.panels[roles.indexOf(role)].prepared.flatMap((p) => {
    const data = window.batchavg.results.get(p.run).results[role].data;
    const out = [[p.run, 'raw', data.raw.step.length]];
    if (data.average && !p.short && window.batchavg.panels[roles.indexOf(role)].smoothed) {
      out.push([p.run, 'average', data.average.step.length]);
    }
    return out;
  })]))"""


def test_controls_have_labels(tab):
    unlabelled = tab.eval("""[...document.querySelectorAll('input, select, button')].filter((c) =>
      !((c.labels && c.labels.length) || c.getAttribute('aria-label') || (c.tagName === 'BUTTON' && c.textContent.trim())))
      .map((c) => c.outerHTML.slice(0, 80))""")
    assert unlabelled == []


def test_tensorboard_reload_refreshes_and_keeps_zoom_and_settings(tab, logdir):
    tab.show_runs("^(run_0|late_run)$")
    area = tab.frame.locator("[data-role=loss] .plot-area")
    area.focus()
    tab.act(lambda: area.press("+"))
    zoom = tab.domain(CHARTS_JS["loss"])
    window = tab.frame.get_by_label("Window (points)").input_value()
    (logdir / "late_run").mkdir()
    helpers.write_scalars(str(logdir / "late_run"), helpers.training_like(500, seed=5))
    # TensorBoard's own reload button: the tab hears "experimental.DataReloaded" on its port.
    tab.page.locator("app-header-reload button").click()
    tab.frame.wait_for_function(
        "[...document.querySelectorAll('.run-name')].some(e => e.textContent === 'late_run')", timeout=30000
    )
    tab.frame.wait_for_function(RENDERED_JS, arg=0)
    assert tab.domain(CHARTS_JS["loss"]) == zoom
    assert tab.frame.get_by_label("Window (points)").input_value() == window
    tab.act(lambda: area.press("0"))


def test_settings_persist_across_page_reloads(tab):
    tab.act(lambda: tab.frame.get_by_label("Method").select_option("median"))
    tab.act(lambda: tab.frame.get_by_label("Band", exact=True).select_option("minmax"))
    tab.frame.get_by_label("Loss y scale").select_option("linear")
    tab.page.reload()
    tab.attach()
    assert tab.frame.get_by_label("Method").input_value() == "median"
    assert tab.frame.get_by_label("Band", exact=True).input_value() == "minmax"
    assert tab.frame.get_by_label("Loss y scale").input_value() == "linear"
    assert tab.eval("window.batchavg.results.values().next().value.results.loss.data.params.method") == "median"
    tab.eval("localStorage.clear()")


def test_dark_mode_follows_the_system_preference(browser, server):
    context = browser.new_context(viewport=VIEWPORT, color_scheme="dark")
    try:
        tab = Tab(context.new_page(), server)
        tab.open()
        assert tab.eval("document.documentElement.dataset.theme") == "dark"
        background = tab.eval("getComputedStyle(document.body).backgroundColor")
        r, g, b = (int(v) for v in background[background.index("(") + 1 : -1].split(",")[:3])
        assert max(r, g, b) < 80, background
        tab.screenshot("dark.png")
    finally:
        context.close()


def test_the_tab_works_under_a_path_prefix(browser, tmp_path):
    (tmp_path / "solo").mkdir()
    helpers.write_scalars(str(tmp_path / "solo"), helpers.training_like(800, seed=3))
    with helpers.tensorboard_process(str(tmp_path), "--path_prefix", "/tb") as base:
        assert base.endswith("/tb")
        context = browser.new_context(viewport=VIEWPORT)
        try:
            tab = Tab(context.new_page(), base)
            tab.open()
            assert tab.frame.locator(".run-name").all_text_contents() == ["solo"]
            for role in SHARED_CHARTS:
                assert tab.coloured_pixels(role) > 500
            plugin_requests = [u for u in tab.requests if "/plugin/batchavg/" in u]
            assert plugin_requests and all(urllib.parse.urlparse(u).path.startswith("/tb/") for u in plugin_requests)
            tab.screenshot("path_prefix.png")
        finally:
            context.close()


SHORT_RUN, SHORT_N = "short_run", 400
SERIES_DRAWN_JS = """(index) => window.batchavg.panels[index].chart.series.map((s) =>
  [s.run, s.width === 1.75 ? 'average' : 'raw', s.x.length])"""


def add_run(tab, logdir, name, columns):
    """Writes a run into the served logdir and refreshes the tab until it lists it."""
    (logdir / name).mkdir()
    helpers.write_scalars(str(logdir / name), columns)
    # Listed, read (runs load in the background: "state"), and no poll of the run list pending (a run
    # becoming ready is fetched then, which would overtake the test's own requests). The server finds
    # new run directories at its next background pass: a Refresh before that lists the runs it had,
    # so Refresh is clicked again, as a user would, until the run is there.
    listed = """(name) => window.batchavg.runs.some((r) => r.run === name &&
      (!r.state || r.state === 'ready')) && window.batchavg.pollTimer === null &&
      document.getElementById('batchavg').dataset.state === 'ready'"""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError  # here: collection needs none

    for attempt in range(6):
        tab.act(lambda: tab.frame.get_by_role("button", name="Refresh").click())
        try:
            tab.frame.wait_for_function(listed, arg=name, timeout=5000)
            return
        except PlaywrightTimeoutError:
            if attempt == 5:
                raise


def set_number(tab, control, value):
    if control.input_value() != str(value):
        tab.act(lambda: (control.fill(str(value)), control.press("Enter")))


def test_a_run_shorter_than_the_window_shows_a_notice_and_its_raw_values(tab, logdir):
    """run_0 has 3,000 points, short_run 400; with a window of 1,000 the server answers short_run's
    averages with its raw values and the reason (a 200, issue 14): the tab draws them with a notice
    saying why, and run_0's average."""
    add_run(tab, logdir, SHORT_RUN, helpers.training_like(SHORT_N, seed=7))
    tab.show_runs("^(run_0|%s)$" % SHORT_RUN)
    if tab.frame.get_by_label("Method").input_value() != "sma":
        tab.act(lambda: tab.frame.get_by_label("Method").select_option("sma"))
    with tab.page.expect_response(
        lambda r: "/averages?run=%s&" % SHORT_RUN in r.url and "window=1000&" in r.url
    ) as info:
        set_number(tab, tab.frame.get_by_label("Window (points)"), 1000)
    refused = info.value
    assert refused.status == 200 and refused.json()["reason"] == "window_longer_than_series"
    assert refused.json()["average"] is None and refused.json()["raw"]["count"] == SHORT_N
    assert refused.json()["message"].startswith("window 1000 is longer than the series of run 'short_run' tag 'train/")
    message = "%s: %d points, shorter than the window 1000 – showing raw values only" % (SHORT_RUN, SHORT_N)
    for role in ("loss", "grad_norm"):
        notice = tab.frame.locator("[data-role=%s] .run-notice.short" % role)
        assert notice.all_text_contents() == [message], role
        assert notice.is_visible() and notice.get_attribute("data-run") == SHORT_RUN
        assert "longer than" not in tab.frame.locator("[data-role=%s] .notes" % role).text_content()
    assert not tab.frame.locator("[data-role=learning_rate] .run-notices").is_visible()  # never averaged
    short = tab.eval("window.batchavg.results.get('%s').results.loss" % SHORT_RUN)
    assert (short["short"]["window"], short["short"]["length"], short["data"]["raw"]["count"]) == (
        1000,
        SHORT_N,
        SHORT_N,
    )
    assert tab.eval("window.batchavg.results.get('run_0').results.loss.data.average.count") == N - 1000 + 1
    drawn = tab.eval(SERIES_DRAWN_JS, 0)
    assert sorted((run, kind) for run, kind, _ in drawn) == [("run_0", "average"), ("run_0", "raw"), (SHORT_RUN, "raw")]
    assert all(n > 0 for _, _, n in drawn) and [n for run, _, n in drawn if run == SHORT_RUN] == [SHORT_N]
    assert tab.coloured_pixels("loss") > 1000
    tab.screenshot("shorter_than_window.png")

    # With raw lines off, the short run's raw values are still drawn (it has nothing else).
    tab.act(lambda: tab.frame.get_by_label("Show raw values").uncheck())
    assert sorted((run, kind) for run, kind, _ in tab.eval(SERIES_DRAWN_JS, 0)) == [
        ("run_0", "average"),
        (SHORT_RUN, "raw"),
    ]
    tab.act(lambda: tab.frame.get_by_label("Show raw values").check())

    # A rolling window longer than short_run's joined points: its table row, lag and scatter stay.
    set_number(tab, tab.frame.locator("#ba-corr-corrWindow"), 1000)
    assert tab.frame.locator("[data-role=correlation] .run-notice.short").all_text_contents() == [
        "%s: %d joined points, shorter than the rolling window 1000 – no rolling correlation (the table, lag and "
        "scatter cover the run)" % (SHORT_RUN, SHORT_N)
    ]
    rows = tab.frame.locator(".corr-table tbody tr")
    assert sorted(rows.evaluate_all("(rows) => rows.map((r) => r.dataset.run)")) == ["run_0", SHORT_RUN]
    reference = tab.api_json("correlation", run=SHORT_RUN)
    assert rows.filter(has_text=SHORT_RUN).locator("td").first.text_content() == str(reference["n"])
    rolling = dict(tab.eval("window.batchavg.correlation.prepared.map((p) => [p.run, p.rollingX.length])"))
    assert rolling[SHORT_RUN] == 0 and rolling["run_0"] > 1000  # (N - 1000 + 1, reduced to max_points)
    set_number(tab, tab.frame.locator("#ba-corr-corrWindow"), 200)
    set_number(tab, tab.frame.get_by_label("Window (points)"), 50)
    assert tab.frame.locator(".run-notice.short").count() == 0


HOSTILE_TAGS = {  # each still detected in its role (metadata.ROLE_PATTERNS)
    "train/loss": 'train/loss/<img src=x onerror="window.__pwned=1">',
    "train/grad_norm": '<svg onload="window.__pwned=2">/global_norm',
    "train/learning_rate": "<script>window.__pwned=3</script>/learning_rate",
}
HOSTILE_TAG_RUN, HOSTILE_TAG_N = "hostile_tags", 600


def test_hostile_tag_names_are_shown_as_text_and_run_nothing(tab, logdir):
    columns = {HOSTILE_TAGS[t]: v for t, v in helpers.training_like(HOSTILE_TAG_N, seed=8).items()}
    add_run(tab, logdir, HOSTILE_TAG_RUN, columns)
    tab.show_runs("^%s$" % HOSTILE_TAG_RUN)
    roles = tab.api_json("runs")["runs"]
    assert next(r for r in roles if r["run"] == HOSTILE_TAG_RUN)["roles"] == {
        "loss": HOSTILE_TAGS["train/loss"],
        "grad_norm": HOSTILE_TAGS["train/grad_norm"],
        "learning_rate": HOSTILE_TAGS["train/learning_rate"],
    }
    for role, label, tag in (
        ("loss", "Loss tag", "train/loss"),
        ("grad_norm", "Gradient norm tag", "train/grad_norm"),
        ("learning_rate", "Learning rate tag", "train/learning_rate"),
    ):
        options = tab.frame.get_by_label(label).evaluate("(s) => [...s.options].map((o) => [o.value, o.textContent])")
        assert [HOSTILE_TAGS[tag], HOSTILE_TAGS[tag]] in options, role  # the tag selects
        assert tab.frame.locator("[data-role=%s] .tag-label" % role).text_content() == "· " + HOSTILE_TAGS[tag]
        assert tab.coloured_pixels(role) > 500, role  # its data loaded: the name went through the URL intact
    assert tab.frame.locator(".health-table tr[data-run=%s] .status" % HOSTILE_TAG_RUN).text_content() in (
        "ok",
        "warning",
        "diverged",
    )
    assert tab.frame.locator(".corr-table tbody th").all_text_contents() == [HOSTILE_TAG_RUN]

    # Picked by hand in the tag select: fetched and drawn, shown as text in the chart's title.
    select = tab.frame.get_by_label("Loss tag")
    tab.act(lambda: select.select_option(HOSTILE_TAGS["train/loss"]))
    assert (
        tab.eval("window.batchavg.results.get('%s').results.loss.data.tag" % HOSTILE_TAG_RUN)
        == HOSTILE_TAGS["train/loss"]
    )
    assert tab.frame.locator("[data-role=loss] .tag-label").text_content() == "· " + HOSTILE_TAGS["train/loss"]
    box = tab.plot_box("loss")
    tab.page.mouse.move((box["left"] + box["right"]) / 2, (box["top"] + box["bottom"]) / 2)
    assert tab.frame.locator("[data-role=loss] .tooltip-row td").nth(1).text_content() == HOSTILE_TAG_RUN
    tab.page.mouse.move(0, 0)

    # The server's notice naming the tag (a window longer than the run), shown under the loss chart.
    set_number(tab, tab.frame.get_by_label("Window (points)"), 1000)
    notice = tab.frame.locator("[data-role=loss] .run-notice.short")
    assert notice.text_content() == "%s: %d points, shorter than the window 1000 – showing raw values only" % (
        HOSTILE_TAG_RUN,
        HOSTILE_TAG_N,
    )
    tab.frame.get_by_label("Run", exact=True).select_option(HOSTILE_TAG_RUN)
    tab.frame.get_by_label("Series", exact=True).select_option("loss")
    with tab.page.expect_download() as info:
        tab.frame.get_by_role("button", name="Download CSV").click()
    assert info.value.suggested_filename.startswith("hostile_tags_train_loss_img_src_x_onerror")
    tab.screenshot("hostile_tags.png")

    tab.page.mouse.move(0, 0)  # the download click left the pointer over the page
    tab.frame.wait_for_function(TOOLTIP_HIDDEN_JS, arg="loss")
    assert tab.eval("typeof window.__pwned") == "undefined"
    assert tab.page.evaluate("typeof window.__pwned") == "undefined"
    for page_or_frame in (tab.frame, tab.page):
        assert page_or_frame.locator("img").count() == 0
        assert (
            page_or_frame.evaluate("""() => [...document.querySelectorAll('*')].filter((e) =>
          [...e.attributes].some((a) => a.name.startsWith('on')) || /pwned/.test(e.tagName === 'SCRIPT' ? e.text : '') ||
          (e.tagName === 'svg' && e.closest('#batchavg'))).map((e) => e.outerHTML.slice(0, 80))""")
            == []
        )
    assert tab.dialogs == []
    tab.act(lambda: select.select_option(""))
    set_number(tab, tab.frame.get_by_label("Window (points)"), 50)
