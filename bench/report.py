"""The machine description, the targets of issue 6 section 2, and the Markdown report."""

import datetime
import os
import platform
import statistics
import subprocess
from importlib import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LOADER_NAMES = {
    "ours": "ours (LogdirReader)",
    "rust": "Rust data server",
    "python": "TensorBoard Python loader",
    "tbparse": "tbparse",
}
_VERSIONED = (
    "numpy",
    "pandas",
    "protobuf",
    "tensorboard",
    "tensorboard-data-server",
    "tensorflow-cpu",
    "tensorflow",
    "tbparse",
    "werkzeug",
)


def load_average():
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "n/a"


def code_version():
    """The checkout's commit, and the files of the package that differ from it."""

    def git(*args):
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        changed = [line[3:] for line in git("status", "--porcelain", "--", "tb_batchavg").splitlines()]
    except (OSError, subprocess.CalledProcessError):
        return "n/a (not a git checkout)"
    return "%s%s" % (commit, "; uncommitted changes in " + ", ".join(changed) if changed else "")


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    memory = "n/a"
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        memory = "%.1f GiB" % (kb / 2**20)
    except (OSError, StopIteration):
        pass
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "load_before": load_average(),
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "code": code_version(),
    }
    info["summary"] = "%s, %s cores, %s, Python %s" % (cpu, info["cores"], memory, info["python"])
    return info


# Formatting ---------------------------------------------------------------------------------


def secs(s):
    if s is None:
        return "n/a"
    if s >= 1:
        return "%.2f s" % s
    return "%.1f ms" % (1e3 * s)


def ratio(x):
    return "n/a" if x is None else "%.2fx" % x


def kb(nbytes):
    return "%.1f KB" % (nbytes / 1024)


def med(values):
    return statistics.median(values) if values else None


def _cold_median(entry, key="seconds"):
    if not entry or "error" in entry:
        return None
    return med(entry[key])


def _cell(entry, key="seconds"):
    if not entry:
        return "n/a"
    if "error" in entry:
        return "error: %s" % entry["error"][:80].replace("|", "/")
    return "%s (%d)" % (secs(med(entry[key])), len(entry[key]))


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# Targets ----------------------------------------------------------------------------------


def _route(results, label):
    return next(r for r in results["routes"]["rows"] if r["label"] == label)


def _core(results, case, baseline):
    entry = next(c for c in results["core"] if c["case"] == case)
    other = next(b for b in entry["baselines"] if b["name"] == baseline)
    return entry["ours"], other["seconds"]


def targets(results):
    """[(target, figure, limit, ok)] for issue 6 section 2, on the target scale."""
    n = results["target_steps"]
    cold = results["cold"][n]
    ours = _cold_median(cold.get("ours"))
    rust = _cold_median(cold.get("rust"))
    python = _cold_median(cold.get("python"))
    out = []

    def add(name, figure, limit, ok):
        out.append((name, figure, limit, "PASS" if ok else "FAIL"))

    if ours is not None and rust is not None:
        listed = _cold_median(cold["rust"], "listed_seconds")
        add(
            "cold load vs Rust data server (until read_scalars returns every point)",
            "%s vs %s: %s (vs its load alone, until list_scalars shows the last steps, %s: %s)"
            % (secs(ours), secs(rust), ratio(ours / rust), secs(listed), ratio(ours / listed)),
            "<= 1.5x",
            ours <= 1.5 * rust,
        )
    else:
        add("cold load vs Rust data server", "not measured", "<= 1.5x", False)
    if ours is not None and python is not None:
        add(
            "cold load vs TensorBoard Python loader",
            "%s vs %s: %s faster" % (secs(ours), secs(python), ratio(python / ours)),
            ">= 5x faster",
            python >= 5 * ours,
        )
    else:
        add("cold load vs TensorBoard Python loader", "not measured", ">= 5x faster", False)
    mine = cold.get("ours", {})
    if "rss_growth" in mine:
        per_point = mine["rss_growth"] / mine["points"]
        add(
            "memory per stored point (resident growth, data held)",
            "%.1f B (arrays %.1f B)" % (per_point, mine["nbytes"] / mine["points"]),
            "<= 32 B",
            per_point <= 32,
        )
    else:
        add("memory per stored point", "not measured", "<= 32 B", False)
    for label, limit in (
        ("averages sma w=50 band=std", 0.05),
        ("averages ema w=0.6 band=std", 0.05),
        ("averages block w=50 band=std", 0.05),
        ("averages median w=50", 0.3),
        ("averages median w=1000", 0.3),
        ("correlation w=200 max_lag=200", 0.15),
    ):
        row = _route(results, label)
        if "error" in row:
            add("warm `%s`" % label, "error", "<= %s" % secs(limit), False)
        else:
            add("warm `%s`" % label, secs(row["median"]), "<= %s" % secs(limit), row["median"] <= limit)
    computed = [r for r in results["routes"]["rows"] if "cached" in r]
    failed = [r["label"] for r in results["routes"]["rows"] if "error" in r and "export" not in r["label"]]
    largest = max(computed, key=lambda r: r["gzip_bytes"])
    add(
        "gzipped payload at default max_points (largest: %s%s)"
        % (largest["label"], "; not measured: " + ", ".join(failed) if failed else ""),
        kb(largest["gzip_bytes"]),
        "< 200 KB",
        largest["gzip_bytes"] < 200 * 1024,
    )
    for case, baseline in (
        ("SMA w=50", "pandas rolling mean"),
        ("SMA w=1000", "pandas rolling mean"),
        ("median w=50", "pandas rolling median"),
        ("median w=1000", "pandas rolling median"),
    ):
        a, b = _core(results, case, baseline)
        add(
            "%s vs %s (same array)" % (case, baseline),
            "%s vs %s: %s" % (secs(a), secs(b), ratio(a / b)),
            "<= 1.5x",
            a <= 1.5 * b,
        )
    inc = med(results["incremental"]["seconds"])
    if ours is not None:
        add(
            "incremental reload after %d appended steps" % results["incremental"]["appended"],
            "%s = %.2f%% of cold %s" % (secs(inc), 100 * inc / ours, secs(ours)),
            "< 5%",
            inc < 0.05 * ours,
        )
    runs = results["runs"]
    add("warm `runs` over %d runs" % runs["runs"], secs(runs["median"]), "<= 300 ms", runs["median"] <= 0.3)
    worst = max(max(c["computed"]) for c in results["routes"]["concurrent"])
    add(
        "warm request for another run while one loads cold (slowest computed `%s`)"
        % results["routes"]["concurrent_route"],
        secs(worst),
        "<= 200 ms",
        worst <= 0.2,
    )
    return out


def all_pass(results):
    return all(row[3] == "PASS" for row in targets(results))


# Report -------------------------------------------------------------------------------------


def markdown(results):
    m = results["machine"]
    args = results["args"]
    n = results["target_steps"]
    points = n * 3
    parts = ["# Benchmarks", ""]
    parts.append(
        "Produced by `make bench` (or `python -m bench.run`); see `bench/README.md` for what each "
        "figure measures. Every ratio is against a baseline measured in the same run on the same "
        "machine. Figures are medians; the number of repeats is in parentheses.%s"
        % (" **Quick run: scales reduced, targets evaluated at %d steps, not 1,000,000.**" % n if args["quick"] else "")
    )
    parts += ["", "## Machine", ""]
    versions = ", ".join("%s %s" % kv for kv in sorted(m["versions"].items()))
    parts.append(
        table(
            ["", ""],
            [
                ("CPU", m["cpu"]),
                ("cores", m["cores"]),
                ("memory", m["memory"]),
                ("OS", m["os"]),
                ("Python", m["python"]),
                ("packages", versions),
                ("load average (1, 5, 15 min) before / after", "%s / %s" % (m["load_before"], m.get("load_after"))),
                ("date", m["date"]),
                ("code (git) at start", m["code"]),
                ("code (git) at end", m.get("code_after")),
                ("total benchmark time", "%.0f s" % results["elapsed"]),
                ("command", "`%s`" % " ".join(["python -m bench.run"] + results["argv"])),
                (
                    "event layout",
                    "one Event per step carrying 3 tags" if args["layout"] == "step" else "one Event per tag per step",
                ),
            ],
        )
    )
    parts += ["", "## Targets (issue 6, section 2) at %s steps x 3 tags" % format(n, ","), ""]
    parts.append(table(["target", "figure", "limit", "result"], targets(results)))

    parts += [
        "",
        "## Cold load of one run (3 tags)",
        "",
        "Baseline ÷ ours: above 1 means ours is faster. Rust data server: until `read_scalars` "
        "returns every point (readable), and until `list_scalars` shows every last step (listed).",
        "",
    ]
    rows = []
    for steps in sorted(results["cold"]):
        c = results["cold"][steps]
        ours = _cold_median(c.get("ours"))

        def versus(entry, key="seconds", ours=ours):
            other = _cold_median(entry, key)
            return ratio(other / ours) if other is not None and ours else "n/a"

        rows.append(
            (
                format(steps, ","),
                format(steps * 3, ","),
                _cell(c.get("ours")),
                _cell(c.get("rust")),
                versus(c.get("rust")),
                _cell(c.get("rust"), "listed_seconds"),
                versus(c.get("rust"), "listed_seconds"),
                _cell(c.get("python")),
                versus(c.get("python")),
                _cell(c.get("tbparse")),
                versus(c.get("tbparse")),
            )
        )
    parts.append(
        table(
            [
                "steps",
                "points",
                "ours",
                "Rust readable",
                "÷ ours",
                "Rust listed",
                "÷ ours",
                "Python loader",
                "÷ ours",
                "tbparse",
                "÷ ours",
            ],
            rows,
        )
    )

    parts += [
        "",
        "## Memory per stored point at %s points" % format(points, ","),
        "",
        "Resident-set growth of a fresh process while the loaded data is held (after garbage "
        "collection), and its peak during the load; for the Rust data server, the server "
        "process's whole resident set once every point is readable.",
        "",
    ]
    rows = []
    for name in ("ours", "python", "tbparse", "rust"):
        e = results["cold"][n].get(name, {})
        if "error" in e or not e:
            rows.append((LOADER_NAMES[name], "n/a", "n/a", "n/a"))
        elif name == "rust":
            rows.append((LOADER_NAMES[name], "%.1f B" % (e["rss"] / points), "n/a", "n/a"))
        else:
            rows.append(
                (
                    LOADER_NAMES[name],
                    "%.1f B" % (e["rss_growth"] / points),
                    "%.1f B" % (e["rss_peak_growth"] / points),
                    "%.1f B" % (e["nbytes"] / points) if e.get("nbytes") else "n/a",
                )
            )
    parts.append(table(["loader", "resident, held", "peak during load", "arrays / DataFrame"], rows))

    r = results["routes"]
    parts += [
        "",
        "## Routes through the WSGI app, run of %s steps" % format(n, ","),
        "",
        "First request (cold load of the run through the app): %s. Computed: data loaded, result "
        "cache missed; cached: the same request again. Payload at the default `max_points` "
        "(2000); requests send `Accept-Encoding: gzip`." % secs(r["app_cold_seconds"]),
        "",
    ]
    rows = [
        (row["label"], _cell(row), "n/a", "n/a", "n/a")
        if "error" in row
        else (row["label"], _cell(row), secs(row.get("cached")), kb(row["raw_bytes"]), kb(row["gzip_bytes"]))
        for row in r["rows"]
    ]
    runs = results["runs"]
    rows.append(
        (
            "runs (%d runs x %s steps; first request %s)"
            % (runs["runs"], format(runs["run_steps"], ","), secs(runs["cold_seconds"])),
            "%s (%d)" % (secs(runs["median"]), len(runs["seconds"])),
            "n/a",
            kb(runs["raw_bytes"]),
            kb(runs["gzip_bytes"]),
        )
    )
    parts.append(table(["route", "computed", "cached", "raw", "gzipped"], rows))

    alone = _route(results, r["concurrent_route"])
    parts += [
        "",
        "## Warm requests while another run loads cold",
        "",
        "A thread's request loads a run of %s steps (%d cold loads); meanwhile requests for the "
        "loaded run go back to back, alternating `%s` computed (cache missed) and the same "
        "request cached." % (format(n, ","), len(r["concurrent"]), r["concurrent_route"]),
        "",
    ]
    rows = []
    for kind in ("computed", "cached"):
        lat = [x for c in r["concurrent"] for x in c[kind]]
        rows.append(
            (
                kind,
                secs(alone.get("median") if kind == "computed" else alone.get("cached")),
                secs(med(lat)),
                secs(_percentile(lat, 95)),
                secs(max(lat)),
                len(lat),
            )
        )
    parts.append(table(["request", "alone", "during: median", "p95", "max", "requests"], rows))
    parts += ["", "The cold requests took %s." % ", ".join(secs(c["cold_seconds"]) for c in r["concurrent"])]

    parts += [
        "",
        "## Numeric core against pandas and np.convolve, %s points" % format(n, ","),
        "",
        "Baseline ÷ ours: above 1 means ours is faster.",
        "",
    ]
    rows = []
    for entry in results["core"]:
        for b in entry["baselines"]:
            rows.append(
                (
                    entry["case"],
                    "%s (%d)" % (secs(entry["ours"]), entry["ours_repeats"]),
                    b["name"],
                    "%s (%d)" % (secs(b["seconds"]), b["repeats"]),
                    ratio(b["seconds"] / entry["ours"]),
                )
            )
    parts.append(table(["case", "ours", "baseline", "baseline time", "÷ ours"], rows))

    inc = results["incremental"]
    ours_cold = _cold_median(results["cold"][n].get("ours"))
    parts += [
        "",
        "## Incremental reload",
        "",
        "`LogdirReader.reload()` after %d steps are appended to the %s-step run's file "
        "(%d appends); cold load of the same run in the same process: %s."
        % (inc["appended"], format(n, ","), len(inc["seconds"]), secs(inc["in_process_cold"])),
        "",
    ]
    parts.append(
        table(
            ["incremental reload", "cold load (table above)", "ratio"],
            [
                (
                    secs(med(inc["seconds"])),
                    secs(ours_cold),
                    "%.2f%%" % (100 * med(inc["seconds"]) / ours_cold) if ours_cold else "n/a",
                )
            ],
        )
    )
    return "\n".join(parts) + "\n"


def _percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]
