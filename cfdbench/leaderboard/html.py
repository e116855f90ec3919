"""The leaderboard as one static HTML page: sortable tables, a scorecard against a named baseline
(WeatherBench 2's relative-improvement view) and the rollout charts.

Like the Markdown page it is a pure function of the entries. Every string that comes from an
entry is escaped with :func:`html.escape`, and the page's only script sorts table rows by the
``data-sort`` numbers the renderer wrote, so an entry can never inject markup or code.
"""

from __future__ import annotations

import math
from html import escape

from cfdbench.leaderboard.charts import line_chart_svg
from cfdbench.leaderboard.render import (
    HEADER,
    Table,
    agreed_identity,
    dataset_tables,
    format_number,
    hash_groups,
    ratio_text,
)

TABLE_COLUMNS = (
    ("nmse", "NMSE"),
    ("mse", "MSE"),
    ("mae", "MAE"),
    ("max_abs", "max abs"),
    ("rel_l2", "rel. L2"),
    ("vrmse", "VRMSE"),
)
SCORECARD_METRICS = ("vrmse", "mae", "brmse", "frmse_high", "divergence", "spectrum_error")
IDENTITY = "identity"
BASELINE_LABEL = "identity (baseline)"
MISSING = object()  # a metric the entry does not report (older or foreign evaluators)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 76rem; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f3f3f3; cursor: pointer; user-select: none; }
td.text, th.text { text-align: left; }
tr.baseline td { font-style: italic; background: #fafafa; }
td.better { background: #d8f0d8; } td.worse { background: #f6d6d6; }
figure { margin: 0.5rem 0 2rem; }
"""

SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var ascending = th.getAttribute("data-order") !== "asc";
    th.setAttribute("data-order", ascending ? "asc" : "desc");
    var column = th.cellIndex;
    var key = function (row) {
      var cell = row.cells[column];
      var value = cell.getAttribute("data-sort");
      return value === null ? cell.textContent : parseFloat(value);
    };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      var order = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
      return ascending ? order : -order;
    }).forEach(function (row) { body.appendChild(row); });
  });
});
"""


def _text(text: str) -> str:
    """A left-aligned cell sorted by its text."""
    return f'<td class="text">{escape(text)}</td>'


def _sorted(text: str, sort: float | None, css: str = "") -> str:
    """A cell sorted by the number ``sort`` (None, a diverged score, sorts last)."""
    key = "Infinity" if sort is None or not math.isfinite(sort) else repr(float(sort))
    css_attr = f' class="{css}"' if css else ""
    return f'<td{css_attr} data-sort="{key}">{escape(text)}</td>'


def _number(value: float | None | object) -> str:
    """A score; None is a diverged rollout, :data:`MISSING` a metric the entry does not report."""
    if value is MISSING:
        return _sorted("n/a", None)
    return _sorted(format_number(value), value)


def _header(titles: list[str], text_columns: set[int]) -> str:
    cells = (f'<th class="text">{escape(t)}</th>' if i in text_columns else f"<th>{escape(t)}</th>" for i, t in enumerate(titles))
    return f"<thead><tr>{''.join(cells)}</tr></thead>"


def _ratio(identity_nmse: float | None, model_nmse: float | None) -> str:
    ratio = identity_nmse / model_nmse if identity_nmse is not None and model_nmse else None
    return _sorted(ratio_text(identity_nmse, model_nmse), -ratio if ratio is not None else None)


def _scores_table(table: Table) -> str:
    """Model rows and one identity row per dataset hash, sortable by every column."""
    rows = []
    for entry in table.entries:
        scores = entry["metrics"][table.block]
        valid = entry["valid_time"]["model"]["mean_steps"] if table.block == "rollout" else None
        rows.append(
            "<tr>"
            + _text(entry["model"]["name"])
            + _number(entry["model"]["parameter_count"])
            + "".join(_number(scores["model"].get(key, MISSING)) for key, _ in TABLE_COLUMNS)
            + _ratio(scores["identity"]["nmse"], scores["model"]["nmse"])
            + (_number(valid) + _speedup(entry) if table.block == "rollout" else "")
            + _text(entry["entry_id"])
            + _text(entry["date"][:10])
            + "</tr>"
        )
    identity = agreed_identity(list(table.entries), table)
    rows.append(
        '<tr class="baseline">'
        + _text(BASELINE_LABEL)
        + _number(0)
        + "".join(_number(identity.get(key, MISSING)) for key, _ in TABLE_COLUMNS)
        + _sorted("1x", -1.0)
        + (_number(table.entries[0]["valid_time"]["identity"]["mean_steps"]) + _text("") if table.block == "rollout" else "")
        + _text("same data and task")
        + _text("")
        + "</tr>"
    )
    titles = ["model", "params", *(t for _, t in TABLE_COLUMNS), "ratio to identity"]
    titles += ["valid steps", "speed-up vs solver"] if table.block == "rollout" else []
    titles += ["entry", "date"]
    text_columns = {0, len(titles) - 2, len(titles) - 1}
    return f'<table class="sortable">{_header(titles, text_columns)}<tbody>{"".join(rows)}</tbody></table>'


def _speedup(entry: dict) -> str:
    """The generator's time over the model's for one rollout, e.g. ``35x`` (blank without a generator)."""
    speedup = entry["cost"].get("speedup_vs_solver")
    return _sorted(f"{speedup:.3g}x", -speedup) if speedup is not None else _text("")


def _relative(value: float | None | object, reference: float | None | object) -> tuple[str, float | None, str]:
    """(text, sort key, css class) of 100 (value - reference) / |reference|: negative is better."""
    if value is MISSING or reference is MISSING:
        return "n/a", None, ""
    if value is None:
        return "diverged", None, "worse"
    if reference is None or reference == 0:
        return "—", None, ""
    change = 100 * (value - reference) / abs(reference)
    return f"{change:+.1f}%", change, "better" if change < 0 else "worse" if change > 0 else ""


def _scorecard(table: Table, baseline: str) -> str:
    """Each model's change against the baseline per NMSE window and rollout metric (WB2's scorecard)."""
    reference, name = _baseline_scores(table, baseline)
    steps = table.entries[0]["task"]["rollout_steps"]
    windows = list(table.entries[0]["rollout_windows"]["identity"]["nmse"])
    columns = [("window", w) for w in windows] + [("metric", m) for m in SCORECARD_METRICS]
    rows = []
    for entry in table.entries:
        if entry["model"]["name"] == name:
            continue
        cells = [_text(entry["model"]["name"])]
        scores = {"window": entry["rollout_windows"]["model"]["nmse"], "metric": entry["metrics"]["rollout"]["model"]}
        for kind, key in columns:
            cells.append(_sorted(*_relative(scores[kind].get(key, MISSING), reference[kind].get(key, MISSING))))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    titles = ["model"] + [f"NMSE steps {w}" for w in windows] + list(SCORECARD_METRICS)
    caption = f"Change against {escape(name)} in %, {steps}-step rollout (negative is better)."
    head = _header(titles, {0})
    return f'<p>{caption}</p><table class="sortable scorecard">{head}<tbody>{"".join(rows)}</tbody></table>'


def _baseline_scores(table: Table, baseline: str) -> tuple[dict[str, dict], str]:
    """Window and metric scores of the named baseline model in this table, else of the identity."""
    named = [e for e in table.entries if e["model"]["name"] == baseline]
    if baseline != IDENTITY and named:
        entry = max(named, key=lambda e: e["date"])
        return {"window": entry["rollout_windows"]["model"]["nmse"], "metric": entry["metrics"]["rollout"]["model"]}, baseline
    windows = table.entries[0]["rollout_windows"]["identity"]["nmse"]
    return {"window": windows, "metric": agreed_identity(list(table.entries), table)}, IDENTITY


def rollout_chart(dataset: str, table: Table) -> str:
    """NMSE per rollout step of every model in the table, with the identity dashed."""
    steps = table.entries[0]["curves"]["steps"]
    series = {_label(table, e): e["curves"]["model"]["nmse"]["mean"] for e in table.entries}
    series[BASELINE_LABEL] = table.entries[0]["curves"]["identity"]["nmse"]["mean"]
    title = f"{dataset}: NMSE per rollout step"
    return line_chart_svg(series, steps, title, "NMSE (mean over cases)", baseline=BASELINE_LABEL)


def _label(table: Table, entry: dict) -> str:
    """The model's name, with the entry's id when several entries share it."""
    repeated = sum(e["model"]["name"] == entry["model"]["name"] for e in table.entries) > 1
    return entry["model"]["name"] + (f" ({entry['entry_id']})" if repeated else "")


def render_html(entries: list[dict], baseline: str = IDENTITY) -> str:
    """The whole page for validated ``entries``."""
    intro = " ".join(line for line in HEADER[2:] if line)
    body = [f"<h1>cfdbench leaderboard</h1><p>{escape(intro)}</p>"]
    sections = dataset_tables(entries)
    if not sections:
        body.append("<p>No entries yet.</p>")
    links = (f'<li><a href="#{escape(d)}-{escape(s)}">{escape(d)} ({escape(s)})</a></li>' for d, s, _ in sections)
    body.append(f"<nav><ul>{''.join(links)}</ul></nav>")
    for dataset, split, tables in sections:
        body.append(f'<section id="{escape(dataset)}-{escape(split)}"><h2>{escape(dataset)} ({escape(split)} split)</h2>')
        for table in (group for t in tables for group in hash_groups(t)):
            body.append(f"<h3>{escape(table.heading)}</h3><p>{escape(table.task_line)}</p>{_scores_table(table)}")
            if table.block == "rollout":
                body.append(f"<h4>Scorecard</h4>{_scorecard(table, baseline)}<figure>{rollout_chart(dataset, table)}</figure>")
        body.append("</section>")
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>cfdbench leaderboard</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + f"\n<script>{SORT_SCRIPT}</script>\n</body>\n</html>\n"
    )
