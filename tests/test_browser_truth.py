"""Issue 14 in a real browser: what the tab shows is true, on logs shaped like other tools' (a loss
crossing zero, a diverged run, runs of different lengths and cadences, Keras's running-mean
batch_loss with its epoch_* and validation runs, an hparams-only run, an empty run, a 20-point run).

Debian's Chromium (never a downloaded one) is driven by Playwright against a real `tensorboard`
process. Screenshots at 1440x900 and 1024x768, light and dark, go to artifacts/issue14_*.png.
"""

import json
import urllib.request

import numpy as np
import pandas as pd
import pytest
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from tests import helpers
from tests.test_browser import ARTIFACTS, RENDERED_JS

# Drives Debian's Chromium (make chromium).
pytestmark = pytest.mark.browser

N = 3000
KERAS_EPOCH, KERAS_EPOCHS = 100, 6
PALETTE = {
    "light": ["#425066", "#12b5cb", "#e52592", "#f9ab00", "#9334e6", "#7cb342", "#e8710a"],
    "dark": ["#8e98a3", "#12b5cb", "#e52592", "#f9ab00", "#9334e6", "#7cb342", "#e8710a"],
}


SELECTS_CUT_JS = """() => [...document.querySelectorAll('.sidebar select')].filter((s) => s.offsetParent !== null).filter((s) => {
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = getComputedStyle(s).font;
  const text = s.options[s.selectedIndex] ? s.options[s.selectedIndex].text : '';
  return ctx.measureText(text).width + 28 > s.clientWidth;
}).map((s) => s.options[s.selectedIndex].text)"""


def auto_window(points):  # state.js autoWindow
    target = max(5, points / 100)
    power = 10 ** np.floor(np.log10(target))
    nice = [m * power for m in (1, 2, 2.5, 5, 10)]
    return int(min(max(1, points), round(min(nice, key=lambda v: abs(v - target)))))


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("issue14_logs")

    def run(name, columns, steps=None, suffix=""):
        (root / name).mkdir(parents=True, exist_ok=True)
        helpers.write_scalars(str(root / name), columns, steps=steps, filename_suffix=suffix)

    rng = np.random.default_rng(0)
    t = np.arange(N)
    run("a_long", helpers.training_like(N, seed=1))
    c = helpers.training_like(N, seed=2)
    c["train/loss"] = (0.8 - t / 1500 + 0.05 * rng.standard_normal(N)).astype(np.float32)  # an NLL crossing zero
    run("b_nll", c)
    c = helpers.training_like(N, seed=3)
    blow = np.exp(np.minimum(69, np.maximum(0, t - 1500) / 20))
    c["train/loss"] = (c["train/loss"] * blow).astype(np.float32)  # diverges to ~1e30
    c["train/grad_norm"] = (c["train/grad_norm"] * blow).astype(np.float32)
    run("c_diverged", c)
    run("d_sparse", helpers.training_like(300, seed=4), steps=np.arange(300) * 10)  # logs every 10 steps
    run("e_short", helpers.training_like(192, seed=5))
    x = helpers.training_like(KERAS_EPOCH * KERAS_EPOCHS, seed=6)["train/loss"] * np.exp(
        0.3 * rng.standard_normal(KERAS_EPOCH * KERAS_EPOCHS)
    )
    running = np.concatenate(
        [
            np.cumsum(x[e * KERAS_EPOCH : (e + 1) * KERAS_EPOCH]) / np.arange(1, KERAS_EPOCH + 1)
            for e in range(KERAS_EPOCHS)
        ]
    )
    run("keras/train", {"batch_loss": running})
    epochs = np.arange(KERAS_EPOCHS)
    run(
        "keras/train",
        {"epoch_loss": running[KERAS_EPOCH - 1 :: KERAS_EPOCH], "epoch_learning_rate": 1e-3 / (epochs + 1)},
        steps=epochs,
        suffix=".epochs",
    )
    run("keras/validation", {"epoch_loss": running[KERAS_EPOCH - 1 :: KERAS_EPOCH] * 1.1}, steps=epochs)
    run("f_hparams", {"hparam/loss": [0.42]})
    (root / "g_empty").mkdir()
    EventFileWriter(str(root / "g_empty")).close()  # a run with no scalars at all
    run("h_tiny", helpers.training_like(20, seed=8))
    return root


class Page:
    def __init__(self, browser, base, width=1440, height=900, scheme="light"):
        self.context = browser.new_context(
            viewport={"width": width, "height": height}, color_scheme=scheme, accept_downloads=True
        )
        self.page = self.context.new_page()
        self.base = base
        self.responses = []
        self.errors = []
        self.page.on("response", lambda r: self.responses.append((r.status, r.url)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(base + "/#batchavg")
        handle = self.page.wait_for_selector(
            "iframe[src*='plugin_entry.html?name=batchavg']", state="attached", timeout=60000
        )
        self.frame = handle.content_frame()
        self.frame.wait_for_function(RENDERED_JS, arg=0, timeout=60000)
        self.wait_health()

    def wait_health(self):
        self.frame.wait_for_function("""() => document.querySelectorAll('.health-table tbody tr').length > 0 &&
          ![...document.querySelectorAll('.health-table tbody td')].some((td) => td.textContent === 'checking…')""")

    def eval(self, expression, arg=None):
        return self.frame.evaluate(expression, arg)

    def act(self, action):
        before = int(self.eval("Number(document.getElementById('batchavg').dataset.renders)"))
        action()
        self.frame.wait_for_function(RENDERED_JS, arg=before, timeout=30000)

    def show(self, regex):
        box = self.frame.get_by_label("Filter runs (regex)")
        if box.input_value() != regex:
            self.act(lambda: box.fill(regex))

    def api(self, route, **params):
        import urllib.parse

        url = "%s/data/plugin/batchavg/%s?%s" % (self.base, route, urllib.parse.urlencode(params))
        with urllib.request.urlopen(url, timeout=30) as response:
            return helpers.strict_json(response.read())

    def plugin_errors(self):
        return [(s, u) for s, u in self.responses if "/plugin/batchavg/" in u and s >= 400]

    def close(self):
        self.context.close()


@pytest.fixture(scope="module")
def tab(browser, server):
    page = Page(browser, server)
    yield page
    page.close()


def test_no_plugin_request_gets_a_4xx_or_5xx_and_every_run_has_its_own_average(tab):
    """Items 3 and 4: each run is averaged with a window from its own length (a 192-point run and a
    run logging every 10 steps included), nothing is refused, and the chart says which window each
    run uses, in points and in steps."""
    tab.show("")
    assert tab.plugin_errors() == [] and tab.errors == []
    runs = {r["run"]: r for r in tab.api("runs")["runs"]}
    for name in ("a_long", "b_nll", "c_diverged", "d_sparse", "e_short", "h_tiny", "keras/train"):
        result = tab.eval("(run) => window.batchavg.results.get(run).results.loss", name)
        tag = runs[name]["roles"]["loss"]
        expected = auto_window(runs[name]["count"][tag])
        assert result["data"]["params"]["window"] == expected, name
        assert result["data"]["average"]["count"] > 0, name  # its own average, never the raw fallback
    notice = tab.frame.locator("[data-role=loss] .run-notice.windows").text_content()
    assert "a_long 25 points (25 steps)" in notice and "d_sparse 5 points (50 steps)" in notice
    assert "e_short 5 points (5 steps)" in notice


def test_a_typed_window_applies_to_every_run_while_typing_and_short_runs_are_answered_raw(tab):
    """Items 4 and 5 (typed window): typing fetches without leaving the field; a window longer than a
    run is a 200 with its raw values (no 4xx), noticed under the chart, drawn fully opaque."""
    tab.show("^(a_long|e_short)$")
    number = tab.frame.get_by_label("Window (points)")
    number.focus()
    with tab.page.expect_response(lambda r: "/averages?run=e_short&" in r.url and "window=250&" in r.url) as info:
        tab.act(lambda: number.press_sequentially("250"))
    assert info.value.status == 200 and info.value.json()["reason"] == "window_longer_than_series"
    assert tab.eval("document.activeElement.type") == "number"  # still typing: no blur needed
    assert tab.eval("window.batchavg.results.get('a_long').results.loss.data.params.window") == 250
    assert tab.frame.locator("[data-role=loss] .run-notice.short").text_content() == (
        "e_short: 192 points, shorter than the window 250 – showing raw values only"
    )
    drawn = tab.eval("window.batchavg.panels[0].chart.series.filter((s) => s.run === 'e_short').map((s) => s.alpha)")
    assert drawn == [1]
    assert tab.plugin_errors() == []
    tab.screenshot = tab.page.screenshot(path=str(ARTIFACTS / "issue14_short_run.png"))
    tab.act(lambda: tab.frame.get_by_role("button", name="Per run").click())
    assert tab.eval("window.batchavg.results.get('e_short').results.loss.data.params.window") == 5


def test_a_loss_below_zero_stays_visible_and_forced_log_says_what_it_hides(tab):
    """Item 1."""
    tab.show("^b_nll$")
    chart = "window.batchavg.panels[0].chart"
    assert tab.eval(chart + ".scales.y.log") is False
    assert tab.eval(chart + ".scales.y.domain[0]") < -0.9
    count = tab.api("averages", run="b_nll", tag="train/loss", window=1)["nonpositive_count"]
    assert count > 1000
    note = tab.frame.locator("[data-role=loss] .scale-note").text_content()
    assert note == "Linear y: %d values ≤ 0 (b_nll: %d) cannot be shown on a log axis." % (count, count)
    tab.frame.get_by_label("Loss y scale").select_option("log")  # redraws this chart only (no fetch)
    assert tab.eval(chart + ".scales.y.log") is True
    assert (
        tab.frame.locator("[data-role=loss] .scale-note").text_content().startswith("%d values ≤ 0 not shown" % count)
    )
    tab.frame.get_by_label("Loss y scale").select_option("auto")
    assert tab.eval(chart + ".scales.y.log") is False


def test_one_diverged_run_does_not_flatten_the_others_and_y_zooms(tab):
    """Item 2: the diverged run (to ~1e30) is clipped and marked at the edge, the others keep the
    axis; shift-drag zooms y, reset y goes back."""
    tab.show("^(a_long|c_diverged)$")
    chart = "window.batchavg.panels[0].chart"
    lo, hi = tab.eval(chart + ".scales.y.domain")
    assert hi < 10 and lo > 0.01  # a_long's loss spans about 0.1..3
    offscale = {o["run"]: o for o in tab.eval(chart + ".offscale")}
    assert offscale["c_diverged"]["above"] > 500 and offscale["c_diverged"]["max"] > 1e25
    assert "c_diverged" in tab.frame.locator("[data-role=loss] .offscale-note").text_content()
    area = tab.frame.locator("[data-role=loss] .plot-area").bounding_box()
    margin = tab.eval(chart + ".margin")
    x = area["x"] + margin["left"] + 200
    top, bottom = area["y"] + margin["top"] + 20, area["y"] + area["height"] - margin["bottom"] - 20
    tab.page.keyboard.down("Shift")
    tab.page.mouse.move(x, top)
    tab.page.mouse.down()
    tab.page.mouse.move(x, (top + bottom) / 2, steps=3)
    tab.page.mouse.up()
    tab.page.keyboard.up("Shift")
    zoomed = tab.eval(chart + ".scales.y.domain")
    assert zoomed[1] < hi and zoomed[0] > lo
    assert tab.frame.locator("[data-role=loss]").get_by_role("button", name="reset y").is_visible()
    tab.page.screenshot(path=str(ARTIFACTS / "issue14_diverged_yzoom.png"))
    tab.frame.locator("[data-role=loss]").get_by_role("button", name="reset y").click()
    assert tab.eval(chart + ".scales.y.domain") == [lo, hi]


def test_keras_running_mean_is_named_and_raises_no_spike_and_epoch_tags_play_no_role(tab):
    """Items 7 and 8."""
    runs = {r["run"]: r for r in tab.api("runs")["runs"]}
    assert runs["keras/train"]["roles"] == {"loss": "batch_loss", "grad_norm": None, "learning_rate": None}
    assert runs["keras/validation"]["roles"] == {"loss": None, "grad_norm": None, "learning_rate": None}
    assert runs["f_hparams"]["roles"]["loss"] is None  # hparam/loss: one point
    diagnostics = tab.api("diagnostics", run="keras/train")
    assert [e for e in diagnostics["events"] if e["kind"] == "loss_spike"] == []
    assert diagnostics["running_mean"]["loss"]["resets"] == [e * KERAS_EPOCH for e in range(KERAS_EPOCHS)]
    tab.show("^keras/")
    notice = tab.frame.locator("[data-role=loss] .run-notice.running-mean").text_content()
    assert notice.startswith("keras/train: batch_loss is a running mean since the epoch's start")
    assert "BatchAverages" in notice
    assert tab.eval("window.batchavg.results.get('keras/train').results.learning_rate.missing") is True
    rows = dict(
        tab.eval("""[...document.querySelectorAll('.health-table tbody tr')].map((tr) =>
      [tr.dataset.run, tr.querySelector('.status').textContent])""")
    )
    assert rows == {"keras/train": "ok", "keras/validation": "no data"}
    # Charts without data keep no stale off-scale note (from runs shown before).
    assert tab.frame.locator("[data-role=grad_norm] .offscale-note").is_hidden()
    assert "lag" not in tab.frame.locator(".health-table tr[data-run='keras/train'] .precedence").text_content()
    tab.page.screenshot(path=str(ARTIFACTS / "issue14_keras.png"))


def test_an_empty_run_is_not_ok_and_is_not_offered_for_export(tab):
    """Item 9."""
    tab.show("")
    assert tab.api("diagnostics", run="g_empty")["status"] == "no_data"
    assert tab.frame.locator(".health-table tr[data-run=g_empty] .status").text_content() == "no data"
    offered = tab.frame.get_by_label("Run", exact=True).evaluate("(s) => [...s.options].map((o) => o.value)")
    assert "g_empty" not in offered and "f_hparams" not in offered and "keras/validation" not in offered
    assert {"a_long", "b_nll", "keras/train", "h_tiny"} <= set(offered)
    tab.frame.get_by_label("Run", exact=True).select_option("a_long")
    with tab.page.expect_download() as info:
        tab.frame.get_by_role("button", name="Download CSV").click()
    assert info.value.suggested_filename.startswith("a_long_train_loss_sma")


def test_a_twenty_point_run_has_no_best_lag_and_shows_n(tab):
    """Item 10: precedence and the correlation table's best lag need 30 pairs, and say n."""
    precedence = tab.api("diagnostics", run="h_tiny")["precedence"]
    assert precedence["lag"] is None and precedence["pairs"] == 19 and precedence["min_pairs"] == 30
    long = tab.api("diagnostics", run="a_long")["precedence"]
    assert long["lag_n"] == N - 1 - abs(long["lag"])
    tab.show("^(h_tiny|a_long)$")
    text = tab.frame.locator(".health-table tr[data-run=h_tiny] .precedence").text_content()
    assert "no lag (n 19)" in text
    cells = tab.frame.locator(".corr-table tr[data-run=h_tiny] td").all_text_contents()
    assert cells[-1] == "— (under 30 pairs)"
    long_best = tab.frame.locator(".corr-table tr[data-run=a_long] td").all_text_contents()[-1]
    assert long_best.endswith(", n %d)" % (N - abs(tab.api("correlation", run="a_long")["lag"]["best"])))


def test_centered_windows_in_the_tab_match_pandas(tab):
    """Item 11, end to end: the tab's centered even window equals pandas' rolling(w, center=True)."""
    tab.show("^a_long$")
    tab.act(lambda: tab.frame.get_by_label("Window position").select_option("centered"))
    number = tab.frame.get_by_label("Window (points)")
    tab.act(lambda: (number.fill("10"), number.press("Enter")))
    tab.act(lambda: tab.frame.get_by_label("Edges").select_option("partial"))
    params = tab.eval("window.batchavg.results.get('a_long').results.loss.data.params")
    assert (params["align"], params["window"], params["edges"]) == ("centered", 10, "partial")
    full = tab.api("averages", run="a_long", tag="train/loss", max_points=100000, **params)
    reference = pd.Series(full["raw"]["value"]).rolling(10, center=True, min_periods=1).mean()
    np.testing.assert_allclose(full["average"]["value"], reference.to_numpy(), rtol=1e-12)
    shown = tab.eval("window.batchavg.results.get('a_long').results.loss.data.average")
    at = {s: v for s, v in zip(full["average"]["step"], full["average"]["value"])}
    assert all(at[s] == v for s, v in zip(shown["step"], shown["value"]))
    for label, value in (("Window position", "trailing"), ("Edges", "valid")):
        tab.act(lambda label=label, value=value: tab.frame.get_by_label(label).select_option(value))
    tab.act(lambda: tab.frame.get_by_role("button", name="Per run").click())


def test_colours_are_tensorboards_palette_in_tensorboards_run_order(tab):
    """Item 6: colour id = index in TensorBoard's /data/runs order, palette TensorBoard's."""
    with urllib.request.urlopen(tab.base + "/data/runs", timeout=30) as response:
        order = json.loads(response.read())
    assert tab.api("run_order")["runs"] == order
    colors = dict(tab.eval("[...window.batchavg.colors]"))
    for name, color in colors.items():
        assert color == PALETTE["light"][order.index(name) % 7], name


def test_small_defects(tab):
    """Item 5: the filter that matches nothing, the scatter's colour bar, selects wide enough for
    their labels, log ticks of one format spread evenly, the band told from the raw cloud."""
    tab.show("^nothing-matches$")
    assert (
        tab.frame.locator("[data-role=loss] .plot-message").text_content()
        == "No run matches the filter “^nothing-matches$”."
    )
    tab.show("^a_long$")
    cut = tab.eval(SELECTS_CUT_JS)
    assert cut == []
    scatter = "window.batchavg.correlation.scatter"
    assert tab.eval(scatter + ".margin.top") >= 30  # the colour bar is drawn in the margin above the points
    ticks = tab.eval("""async () => { const m = await import('./scale.js');
      const t = m.logTicks(9.2e-4, 1.12e-3, 6); return [t.values, t.values.map(t.format)]; }""")
    values, labels = ticks
    assert len(values) >= 3 and len({label.count("e") for label in labels}) == 1
    gaps = np.diff(np.log10(values))
    assert gaps.max() < 2.5 * gaps.min()  # evenly spread on the log axis, not bunched at the top
    tab.act(lambda: tab.frame.get_by_label("Band", exact=True).select_option("std"))
    band = tab.eval("window.batchavg.panels[0].chart.series.filter((s) => s.lower).length")
    raw_alpha = tab.eval("window.batchavg.panels[0].chart.series.find((s) => !s.main).alpha")
    assert band == 1 and raw_alpha < 0.28
    tab.act(lambda: tab.frame.get_by_label("Band", exact=True).select_option("none"))


def test_tooltip_keeps_clear_of_the_hovered_points(tab):
    tab.show("^c_diverged$")
    chart = "window.batchavg.panels[0].chart"
    area = tab.frame.locator("[data-role=loss] .plot-area").bounding_box()
    px = tab.eval("(c) => c.scales.x.map(1700)", None) if False else tab.eval(chart + ".scales.x.map(1700)")
    tab.page.mouse.move(area["x"] + px, area["y"] + area["height"] / 2)
    tip = tab.frame.locator("[data-role=loss] .plot-tooltip").bounding_box()
    points = tab.eval("""() => { const c = window.batchavg.panels[0].chart;
      const d = c.describe(c.group.hoverX, c); return d.points.map((p) => c.scales.y.map(p.y)); }""")
    top = min(max(p, tab.eval(chart + ".margin.top")) for p in points)  # off-scale points sit at the top edge
    assert not (tip["y"] - area["y"] <= top <= tip["y"] - area["y"] + tip["height"])
    tab.page.mouse.move(0, 0)


CHIPS_JS = """() => [...document.querySelectorAll('.health-table .events:not(.expanded)')].map((cell) => {
  const edge = cell.querySelector('.chips').getBoundingClientRect().right + 0.5;
  const shown = [...cell.querySelectorAll('.chips button.event')].filter((b) => !b.hidden);
  const more = cell.querySelector('button.more');
  return {total: Number(more.dataset.total), more: more.hidden ? 0 : Number(more.textContent.match(/[0-9]+/)[0]),
    shown: shown.length, inside: shown.every((b) => b.getBoundingClientRect().right <= edge),
    whole: shown.every((b) => b.classList.contains('squeezed') || b.scrollWidth <= b.clientWidth)};
})"""


def test_health_table_fits_at_1024_and_more_keeps_the_run_column(browser, server):
    page = Page(browser, server, 1024, 768)
    try:
        page.show("^c_diverged$")
        # collapsed: whole chips only, inside the cell; "+N more" counts every chip not shown
        cells = page.eval(CHIPS_JS)
        assert cells and all(c["shown"] + c["more"] == c["total"] and c["inside"] and c["whole"] for c in cells), cells
        assert any(c["more"] for c in cells), cells
        more = page.frame.locator(".health-table button.more")
        more.click()
        fits = page.eval("""() => { const s = document.querySelector('.health-scroll');
          return [s.scrollWidth <= s.clientWidth, s.scrollLeft]; }""")
        assert fits == [True, 0]
        name = page.frame.locator(".health-table tr[data-run=c_diverged] th").bounding_box()
        assert name["x"] >= 0 and name["width"] > 40
        cut = page.eval(SELECTS_CUT_JS)
        assert cut == []  # the sidebar's selects show their whole labels at 1024 px too
    finally:
        page.close()


def test_runs_load_in_the_background_with_progress_and_are_drawn_when_ready(browser, server):
    """The `runs` route's state/progress: a loading run shows its progress in the run list and is
    not asked for; the tab polls the run list and draws the run as soon as it is ready."""
    page_ = None
    state = {"loading": True}

    def runs_route(route):
        body = json.loads(route.fetch().text())
        for r in body["runs"]:
            if r["run"] == "a_long" and state["loading"]:
                r["state"], r["progress"] = "loading", {"bytes_read": 420, "bytes_total": 1000}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page_ = context.new_page()
        page_.route("**/data/plugin/batchavg/runs", runs_route)
        requested = []
        page_.on("request", lambda r: requested.append(r.url))
        page_.goto(server + "/#batchavg")
        frame = page_.wait_for_selector(
            "iframe[src*='plugin_entry.html?name=batchavg']", state="attached", timeout=60000
        ).content_frame()
        frame.wait_for_function(RENDERED_JS, arg=0, timeout=60000)
        item = frame.locator(".run-list li[data-run=a_long]")
        assert item.get_attribute("data-state") == "loading"
        assert item.locator(".run-progress-text").text_content() == "loading 42%"
        assert item.locator("[role=progressbar]").get_attribute("aria-valuenow") == "42"
        assert frame.evaluate("window.batchavg.results.has('b_nll') && !window.batchavg.results.has('a_long')")
        assert not [u for u in requested if "/averages?run=a_long&" in u]
        page_.screenshot(path=str(ARTIFACTS / "issue14_loading.png"))
        state["loading"] = False
        frame.wait_for_function("window.batchavg.results.has('a_long')", timeout=20000)
        frame.wait_for_function(RENDERED_JS, arg=0)
        assert frame.locator(".run-list li[data-run=a_long]").get_attribute("data-state") == "ready"
        assert frame.locator(".run-list li[data-run=a_long] .run-loading").count() == 0
    finally:
        context.close()


@pytest.mark.parametrize("width,height", [(1440, 900), (1024, 768)])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(browser, server, width, height, scheme):
    page = Page(browser, server, width, height, scheme)
    try:
        assert page.plugin_errors() == [] and page.errors == []
        assert page.eval("document.documentElement.dataset.theme") == scheme
        colors = set(dict(page.eval("[...window.batchavg.colors]")).values())
        assert colors <= set(PALETTE[scheme])
        page.page.screenshot(path=str(ARTIFACTS / ("issue14_%dx%d_%s.png" % (width, height, scheme))))
        page.show("^(a_long|c_diverged|b_nll)$")
        page.frame.locator("[data-role=loss]").scroll_into_view_if_needed()
        page.page.screenshot(path=str(ARTIFACTS / ("issue14_%dx%d_%s_charts.png" % (width, height, scheme))))
    finally:
        page.close()
