"""Leaderboard entries (schema, validation, atomic files, provenance) and the rendered page."""

from __future__ import annotations

import copy
import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import assert_one_line_error, channel_dns_bytes_differ_here, run_entry_point

from cfdbench.data.download import sha256_of
from cfdbench.entries import entry as entry_module
from cfdbench.entries.entry import (
    SCHEMA_PATH,
    SCHEMA_VERSION,
    Entry,
    entry_paths,
    environment_info,
    load_entries,
    load_entry,
    make_entry_id,
    save_entry,
    validate_entry,
)
from cfdbench.errors import CfdbenchError
from cfdbench.leaderboard.pages import build_leaderboard
from cfdbench.leaderboard.render import format_number, render_leaderboard

METRICS = ("mse", "nmse", "mae", "max_abs", "rel_l2")
HASH_A = "a" * 64
HASH_B = "b" * 64


def scores(nmse: float) -> dict:
    """Five metric values derived from one NMSE, so rows are easy to tell apart."""
    return {"mse": 2 * nmse, "nmse": nmse, "mae": nmse / 2, "max_abs": 10 * nmse, "rel_l2": nmse**0.5}


def curves(steps: int, rollout_nmse: float) -> dict:
    """Curves growing linearly with the step whose means over steps are exactly the rollout scores."""
    growth = [2 * (k + 1) / (steps + 1) for k in range(steps)]
    return {m: {"mean": [value * g for g in growth], "std": [0.01] * steps} for m, value in scores(rollout_nmse).items()}


def valid_time(steps: int) -> dict:
    return {"threshold_nmse": 1.0, "mean_steps": steps, "median_steps": steps, "mean_seconds": 0.5 * steps, "censored_cases": 0}


def make_entry(
    model: str = "fno",
    nmse: float = 0.1,
    identity_nmse: float = 1.0,
    steps: int = 4,
    dataset: str = "cavity-mini",
    content_hash: str = HASH_A,
    date: str = "2026-11-28T19:00:00Z",
) -> dict:
    """A valid entry; keyword arguments vary what the render tests compare."""
    return {
        "schema_version": 3,
        "entry_id": make_entry_id(model, dataset, date),
        "date": date,
        "model": {
            "name": model,
            "card": f"models/{model}.yaml",
            "config": {"n_modes": [24, 22]},
            "parameter_count": 1188706,
            "reference_parameter_count": 1188706,
        },
        "code": {"kind": "builtin", "module": "cfdbench.models.fno", "sha256": "c" * 64},
        "dataset": {
            "name": dataset,
            "version": "1.0.0",
            "content_hash": content_hash,
            "split": "test",
            "n_cases": 3,
            "case_ids": ["bc-0001", "bc-0007", "geo-0002"],
        },
        "task": {"input_frames": 1, "stride": 1, "rollout_steps": steps, "start_frame": 0, "fields": ["u", "v"]},
        "metrics": {
            "one_step": {"model": scores(nmse), "identity": scores(identity_nmse)},
            "rollout": {"model": scores(3 * nmse), "identity": scores(3 * identity_nmse)},
        },
        "curves": {
            "steps": list(range(1, steps + 1)),
            "model": curves(steps, 3 * nmse),
            "identity": curves(steps, 3 * identity_nmse),
        },
        "rollout_windows": {
            "model": {"nmse": {"1": curves(steps, 3 * nmse)["nmse"]["mean"][0]}},
            "identity": {"nmse": {"1": curves(steps, 3 * identity_nmse)["nmse"]["mean"][0]}},
        },
        "valid_time": {"model": valid_time(steps), "identity": valid_time(1)},
        "confidence": {"model": {"nmse": [2 * nmse, 4 * nmse]}, "identity": {"nmse": None}},
        "cost": {"parameter_count": 1188706, "seconds_per_step": 0.01, "seconds_per_rollout": 0.04, "device": "cpu"},
        "diverged": {},
        "training": {"seconds": 12.5, "epochs": 2, "steps": 40, "device": "cpu", "config": {"lr": 1e-3}},
        "hardware": {"device": "cpu", "cpu": "test cpu", "gpu": None, "n_gpus": 0},
        "software": {"python": "3.11.7", "torch": "2.13.0", "neuraloperator": "2.0.0", "cfdbench": "0.1.0", "numpy": "2.0.0"},
        "seed": 0,
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "artifacts": {"curves_json": "runs/fno/curves.json"},
    }


def write_raw(path, entry) -> None:
    """Write an entry without validation (as a hand-edited or foreign file would be)."""
    path.write_text(json.dumps(entry, allow_nan=True), encoding="utf-8")


# --------------------------------------------------------------------------- schema and validation


def test_schema_file_is_versioned():
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)  # a valid draft 2020-12 schema
    assert schema["$id"] == "https://cfdbench.invalid/schemas/leaderboard-entry-v3.json"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert SCHEMA_VERSION == 3 and schema["properties"]["schema_version"] == {"enum": [2, 3]}


def test_the_entry_type_is_the_one_definition_of_the_keys():
    """The schema's top-level keys and required keys are exactly the Entry type's fields."""
    schema = json.loads(SCHEMA_PATH.read_text())
    assert list(schema["properties"]) == sorted(schema["properties"], key=Entry.all_keys().index)
    assert set(schema["properties"]) == set(Entry.all_keys())
    assert set(schema["required"]) == set(Entry.required_keys())
    assert Entry.tier_keys("B") == ("metrics", "curves", "rollout_windows", "valid_time", "confidence", "diverged",
                                    "strouhal", "channel_statistics")  # fmt: skip
    assert Entry.tier_keys("C") == Entry.tier_keys("B") + ("refinement",)


def test_an_entry_reads_like_its_json_object_and_refuses_a_misspelt_key():
    raw = make_entry()
    entry = Entry.from_dict(raw)
    assert entry == raw and entry["model"] is entry.model and "hybrid" not in entry and entry.hybrid is None
    assert dict(entry) == raw and entry.to_dict() == raw and len(entry) == len(raw)
    with pytest.raises(TypeError, match="leaderboard_rank"):
        Entry(**raw, leaderboard_rank=1)


def test_version_2_entries_are_read_without_code_and_version_3_needs_it():
    old = make_entry()
    old["schema_version"] = 2
    del old["code"]
    assert Entry.from_dict(old).code is None
    new = make_entry()
    del new["code"]
    with pytest.raises(CfdbenchError, match=r"\$: 'code' is a required property"):
        validate_entry(new)


DERIVED = {
    "case count": (("dataset", "n_cases"), 2, "$.dataset.n_cases", "is not the number of case_ids"),
    "cost parameters": (("cost", "parameter_count"), 5, "$.cost.parameter_count", "differs from $.model.parameter_count"),
    "speed-up without solver": (("cost", "speedup_vs_solver"), 3.0, "$.cost.speedup_vs_solver", "exactly when"),
    "steps": (("curves", "steps"), [2, 3, 4, 5], "$.curves.steps", "must be 1, 2, ..., 4"),
    "stranger diverged": (("diverged",), {"xyz": 2}, "$.diverged", "not among the scored case_ids"),
    "interval": (("confidence", "model", "nmse"), [0.4, 0.2], "$.confidence.model.nmse", "low end above its high end"),
}


@pytest.mark.parametrize("case", sorted(DERIVED))
def test_numbers_derived_from_others_must_agree_with_them(case):
    where, value, path, fragment = DERIVED[case]
    entry = make_entry()
    _set(where, value)(entry)
    with pytest.raises(CfdbenchError, match=re.escape(f"{path}: ") + ".*" + re.escape(fragment)):
        validate_entry(entry)


def test_the_speedup_is_the_solver_time_over_the_model_time():
    entry = make_entry()
    solver = {"seconds_per_rollout": 2.0, "seconds_per_frame_interval": 0.5, "batch_size": 16, "device": "cpu",
              "hardware": "test cpu", "measured": "2026-12-07T12:00:00Z"}  # fmt: skip
    entry["cost"] |= {"solver": solver, "speedup_vs_solver": 2.0 / 0.04}
    validate_entry(entry)
    entry["cost"]["speedup_vs_solver"] *= 1.01
    with pytest.raises(CfdbenchError, match="is not solver.seconds_per_rollout / seconds_per_rollout"):
        validate_entry(entry)


def test_valid_entry_validates_and_round_trips(tmp_path):
    entry = make_entry()
    validate_entry(entry)
    baseline = make_entry()
    baseline["training"] = None
    del baseline["artifacts"]
    validate_entry(baseline)

    path = save_entry(entry, tmp_path / "e.json")
    text = path.read_text()
    assert text.endswith("}\n") and text == json.dumps(entry, indent=2, sort_keys=True) + "\n"
    assert load_entry(path) == entry


def _drop_date(e):
    del e["date"]


def _set(path: tuple, value):
    def mutate(entry):
        target = entry
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _short_curve(e):
    e["curves"]["model"]["rel_l2"]["std"].pop()


INVALID = {
    "missing key": (_drop_date, "$", "'date' is a required property"),
    "negative metric": (
        _set(("metrics", "one_step", "model", "mse"), -1.0),
        "$.metrics.one_step.model.mse",
        "less than the minimum",
    ),
    "nan metric": (
        _set(("metrics", "rollout", "identity", "nmse"), float("nan")),
        "$.metrics.rollout.identity.nmse",
        "not a finite number",
    ),
    "inf metric": (
        _set(("metrics", "one_step", "model", "max_abs"), float("inf")),
        "$.metrics.one_step.model.max_abs",
        "not a finite number",
    ),
    "wrong curve length": (_short_curve, "$.curves.model.rel_l2.std", "task.rollout_steps is 4"),
    "wrong steps length": (_set(("curves", "steps"), [1, 2, 3]), "$.curves.steps", "task.rollout_steps is 4"),
    "schema version": (_set(("schema_version",), 1), "$.schema_version", "reads version(s) 2, 3"),
    "tampered score": (
        _set(("metrics", "rollout", "model", "nmse"), 0.01),
        "$.metrics.rollout.model.nmse",
        "is not the mean of its per-step curve",
    ),
    "diverged curve, finite score": (
        _set(("curves", "model", "mse", "mean"), [0.1, 0.2, None, None]),
        "$.metrics.rollout.model.mse",
        "is not the mean of its per-step curve (None)",
    ),
    "extra key": (_set(("leaderboard_rank",), 1), "$", "'leaderboard_rank' was unexpected"),
    "bad date": (_set(("date",), "2026-13-45T19:00:00Z"), "$.date", "not a valid date-time"),
    "bad hash": (_set(("dataset", "content_hash"), "xyz"), "$.dataset.content_hash", "does not match"),
    "bad type": (_set(("training",), "yes"), "$.training", "expected object or null, got string"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_entries_are_rejected_with_one_readable_line(case, tmp_path):
    mutate, json_path, fragment = INVALID[case]
    entry = make_entry()
    mutate(entry)

    with pytest.raises(CfdbenchError) as excinfo:
        validate_entry(entry, source="my-entry.json")
    message = str(excinfo.value)
    assert message.startswith(f"my-entry.json: invalid leaderboard entry: {json_path}: ")
    assert fragment in message and "\n" not in message

    target = tmp_path / "saved.json"
    with pytest.raises(CfdbenchError, match="saved.json: invalid leaderboard entry"):
        save_entry(entry, target)
    assert list(tmp_path.iterdir()) == []  # validation failure writes nothing

    raw = tmp_path / "raw.json"
    write_raw(raw, entry)
    with pytest.raises(CfdbenchError, match=re.escape(f"{raw}: invalid leaderboard entry: {json_path}")):
        load_entry(raw)


def test_long_values_are_abbreviated():
    entry = make_entry()
    entry["curves"]["steps"] = "x" * 500
    with pytest.raises(CfdbenchError) as excinfo:
        validate_entry(entry)
    assert len(str(excinfo.value)) < 200


def test_non_json_values_are_rejected():
    entry = make_entry()
    entry["model"]["config"]["path"] = object()
    with pytest.raises(CfdbenchError, match=r"\$\.model\.config\.path: object is not a JSON value"):
        validate_entry(entry)


def test_unreadable_json_names_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1,')
    with pytest.raises(CfdbenchError, match="broken.json: cannot read leaderboard entry"):
        load_entry(broken)
    nan_literal = tmp_path / "nan.json"
    nan_literal.write_text('{"x": NaN}')
    with pytest.raises(CfdbenchError, match=r"nan.json: invalid leaderboard entry: \$\.x: nan is not a finite"):
        load_entry(nan_literal)
    with pytest.raises(CfdbenchError, match="missing.json: cannot read"):
        load_entry(tmp_path / "missing.json")


def test_load_entries_sorted_by_path(tmp_path):
    for name in ("b", "c", "a"):
        save_entry(make_entry(model=f"m{name}"), tmp_path / f"{name}.json")
    (tmp_path / "notes.txt").write_text("ignored")
    assert [e["model"]["name"] for e in load_entries(tmp_path)] == ["ma", "mb", "mc"]
    with pytest.raises(CfdbenchError, match="does not exist"):
        load_entries(tmp_path / "nowhere")


# --------------------------------------------------------------------------- atomic save


def test_save_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "entry.json"
    save_entry(make_entry(nmse=0.1), target)
    original = target.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry.json"]  # no temp file left

    bad = make_entry()
    bad["seed"] = -1
    with pytest.raises(CfdbenchError):
        save_entry(bad, target)
    assert target.read_bytes() == original

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_entry(make_entry(nmse=0.2), target)
    assert target.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry.json"]


# --------------------------------------------------------------------------- rendering


def table_blocks(markdown: str) -> list[list[str]]:
    """The rows (after header and alignment lines) of every Markdown table."""
    blocks, current = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current[2:])
            current = []
    return blocks


def three_models() -> list[dict]:
    return [
        make_entry(model="unet", nmse=0.05, date="2026-11-28T19:00:01Z"),
        make_entry(model="fno", nmse=0.01),
        make_entry(model="worse", nmse=2.0, date="2026-11-28T19:00:02Z", steps=8),
    ]


def test_render_identity_row_in_every_table_and_sorted_by_nmse():
    markdown = render_leaderboard(three_models())
    assert "`cfdbench leaderboard build`" in markdown and "leaderboard/entries/<dataset>/*.json" in markdown
    assert "### One-step" in markdown and "### Rollout, 4 steps" in markdown and "### Rollout, 8 steps" in markdown

    blocks = table_blocks(markdown)
    assert len(blocks) == 3
    for rows in blocks:
        assert sum("**identity** (baseline)" in row for row in rows) == 1

    one_step = [row.split(" | ")[1] for row in blocks[0]]
    assert one_step == ["fno", "unet", "**identity** (baseline)", "worse"]
    ranks = [row.split(" | ")[0].strip("| ") for row in blocks[0]]
    assert ranks == ["1", "2", "—", "3"]
    assert "| 1.000e-02 |" in blocks[0][0] and "| 100x |" in blocks[0][0]  # NMSE and identity ratio
    assert "(entries/cavity-mini/fno--cavity-mini--20261128T190000Z.json)" in blocks[0][0]
    assert "| A; awaiting re-run \\(no predictions\\) |" in blocks[0][0]  # no published predictions: tier A only
    assert "1.0.0 `aaaaaaaa`" in blocks[0][0] and "2026-11-28" in blocks[0][0]


def test_render_is_deterministic():
    entries = three_models()
    first = render_leaderboard(entries)
    shuffled = copy.deepcopy(entries)
    random.Random(0).shuffle(shuffled)
    assert render_leaderboard(shuffled).encode() == first.encode()


def test_one_table_and_identity_row_per_dataset_hash_and_disagreement_is_an_error():
    entries = [make_entry(model="fno"), make_entry(model="unet", content_hash=HASH_B, identity_nmse=0.9)]
    page = render_leaderboard(entries)
    blocks = table_blocks(page)
    assert len(blocks) == 4 and all(sum("**identity**" in row for row in rows) == 1 for rows in blocks)
    assert "### One-step, data aaaaaaaa" in page and "### Rollout, 4 steps, data bbbbbbbb" in page

    entries[1]["dataset"]["content_hash"] = HASH_A
    with pytest.raises(CfdbenchError, match="identity baseline .* must agree"):
        render_leaderboard(entries)
    entries[1]["metrics"] = copy.deepcopy(entries[0]["metrics"])
    entries[1]["metrics"]["one_step"]["identity"]["nmse"] *= 1 + 1e-9  # within tolerance
    render_leaderboard(entries)


def test_render_without_entries():
    assert "No entries yet." in render_leaderboard([])


def test_format_number():
    assert format_number(0.001234) == "1.234e-03" and format_number(0.01) == "1.000e-02"
    assert format_number(0.5) == "0.5000" and format_number(12.3456) == "12.35" and format_number(999.9) == "999.9"
    assert format_number(0.099999) == "0.1000" and format_number(999.99) == "1.000e+03"
    assert format_number(123456.0) == "1.235e+05" and format_number(0.0) == "0"


def save_in_layout(entries_dir, entries) -> None:
    for entry in entries:
        save_entry(entry, entries_dir / entry["dataset"]["name"] / f"{entry['entry_id']}.json")


def test_build_writes_pages_and_charts_with_links(tmp_path):
    root = tmp_path / "leaderboard"
    save_in_layout(root / "entries", three_models())
    written = build_leaderboard(root / "entries", root)
    names = [p.relative_to(root).as_posix() for p in written]
    assert names[:2] == ["README.md", "index.html"] and len(names) == 4  # two rollout charts (K = 4 and 8)
    text = (root / "README.md").read_text()
    assert "(entries/cavity-mini/unet--cavity-mini--20261128T190001Z.json)" in text and "_file" not in text
    for chart in names[2:]:
        assert f"]({chart})" in text and (root / chart).read_text().startswith("<svg")
    assert load_entries(root / "entries")[0].keys() == three_models()[0].keys()  # links never saved
    (root / "figures" / "stale.svg").write_text("<svg/>")
    build_leaderboard(root / "entries", root)
    assert not (root / "figures" / "stale.svg").exists()  # the build owns its figures


def test_build_writes_nothing_when_an_entry_is_invalid(tmp_path):
    entries_dir = tmp_path / "entries"
    save_in_layout(entries_dir, three_models())
    bad = make_entry(model="bad")
    bad["metrics"]["one_step"]["model"]["nmse"] = -0.5
    write_raw(entries_dir / "bad.json", bad)

    out = tmp_path / "page"
    with pytest.raises(CfdbenchError, match=r"bad\.json: invalid leaderboard entry"):
        build_leaderboard(entries_dir, out)
    assert not out.exists()

    out.mkdir()
    (out / "README.md").write_text("previous page\n")
    with pytest.raises(CfdbenchError):
        build_leaderboard(entries_dir, out)
    assert (out / "README.md").read_text() == "previous page\n"


def test_build_rejects_duplicate_entry_ids(tmp_path):
    entry = make_entry()
    save_entry(entry, tmp_path / "e" / "one.json")
    save_entry(entry, tmp_path / "e" / "two.json")
    with pytest.raises(CfdbenchError, match="two.json: entry_id .* is also used by .*one.json"):
        build_leaderboard(tmp_path / "e", tmp_path / "out")


# --------------------------------------------------------------------------- HTML page


def test_html_escapes_every_entry_string_and_sorts_by_numbers():
    from cfdbench.leaderboard.html import render_html

    evil = make_entry(model="x", nmse=0.02)
    evil["model"]["name"] = "<script>alert(1)</script>"
    evil["entry_id"] = "evil--cavity-mini--20261128T190009Z"
    page = render_html(three_models() + [evil])
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # the page's own sorting script only
    assert 'data-sort="0.01"' in page and 'class="sortable"' in page
    assert "Change against identity in %" in page
    assert render_html(three_models()) == render_html(list(reversed(three_models())))  # deterministic


def test_tables_split_by_dataset_hash_and_missing_metrics_read_na():
    from cfdbench.leaderboard.html import render_html

    old = make_entry(model="unet", content_hash=HASH_B, identity_nmse=0.9)
    page = render_html([make_entry(model="fno"), old])  # two hashes: two tables, each with its identity
    assert "Rollout, 4 steps, data aaaaaaaa" in page and "Rollout, 4 steps, data bbbbbbbb" in page
    assert 'data-sort="Infinity">n/a<' in page and ">diverged<" not in page  # vrmse is not in these entries


def test_window_means_must_match_the_curve():
    entry = make_entry()
    entry["rollout_windows"]["model"]["nmse"]["1"] *= 1.5
    with pytest.raises(CfdbenchError, match=r"rollout_windows\.model\.nmse\['1'\]: .* is not the mean of its per-step curve"):
        validate_entry(entry)


def test_scorecard_is_relative_to_the_named_baseline():
    from cfdbench.leaderboard.html import render_html

    entries = three_models()[:2]
    for entry in entries:  # a second rollout metric that both the models and the identity report
        for who, value in (("model", 0.2 if entry["model"]["name"] == "fno" else 0.4), ("identity", 1.0)):
            entry["rollout_windows"][who]["nmse"] = {"1": value}
    page = render_html(entries)
    assert "-80.0%" in page and "-60.0%" in page  # 0.2 and 0.4 against the identity's 1.0
    named = render_html(entries, baseline="fno")
    assert "Change against fno in %" in named and "+100.0%" in named  # unet's 0.4 against fno's 0.2


def test_diverged_scores_render_as_diverged_and_sort_last():
    from cfdbench.leaderboard.html import render_html

    entry = make_entry(model="unstable", steps=4)
    for metric in METRICS:
        entry["curves"]["model"][metric]["mean"][2:] = [None, None]
        entry["curves"]["model"][metric]["std"][2:] = [None, None]
        entry["metrics"]["rollout"]["model"][metric] = None
    entry["diverged"] = {"bc-0001": 3}
    validate_entry(entry)
    assert "diverged" in render_leaderboard([entry])
    page = render_html([entry])
    assert 'data-sort="Infinity">diverged<' in page


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]  # fmt: skip
# Appended to the page under test: writes what the browser laid out into the DOM that --dump-dom returns.
LAYOUT_PROBE = """<script>
var wrapped = 0;
document.querySelectorAll("table.sortable td").forEach(function (td) {
  var range = document.createRange(); range.selectNodeContents(td);
  var lines = new Set(Array.from(range.getClientRects()).map(function (r) { return Math.round(r.top); }));
  if (lines.size > 1) { wrapped += 1; }
});
document.body.setAttribute("data-wrapped-cells", wrapped);
document.querySelector("table.sortable").tHead.rows[0].cells[3].click();
</script>"""


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no headless Chromium (Debian package chromium)")
def test_page_renders_in_headless_chromium(tmp_path):
    """The page in a real browser, as a researcher would read it: after its script ran, the DOM holds
    every table with a rank column, one identity row per table and a link to each entry file; no
    cell wraps in a narrow window; a hostile name (refused by the entry schema, rendered here anyway)
    stays text; a click on a header sorts the rows by number; each chart draws its models in distinct
    colours. A screenshot is kept as an artefact."""
    from cfdbench.leaderboard.html import render_html

    evil = make_entry(model="x", nmse=0.02)
    evil["model"]["name"] = "<img src=x onerror=alert(1)>"
    evil["entry_id"] = "evil--cavity-mini--20261128T190009Z"
    crowd = [make_entry(model=f"m{i:02d}", nmse=0.06 + i / 100, date=f"2026-11-28T19:01:{i:02d}Z") for i in range(14)]
    page = tmp_path / "index.html"
    page.write_text(render_html(three_models() + [evil] + crowd).replace("</body>", LAYOUT_PROBE + "</body>"))
    flags = CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'profile'}", "--window-size=900,2000"]
    dom = subprocess.run(["chromium", *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="sortable"') == 3 and "<img" not in dom.stdout
    assert 'data-wrapped-cells="0"' in dom.stdout  # numbers, names and links each on one line
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom.stdout
    first_table = dom.stdout.split('class="sortable"')[1]
    rows = re.findall(r'<tr[^>]*><td data-sort="[^"]*">([^<]*)</td><td class="text">([^<]*)</td>', first_table)
    assert [name for _, name in rows[:5]] == ["fno", "&lt;img src=x onerror=alert(1)&gt;", "unet", "m00", "m01"]  # by NMSE
    assert [rank for rank, _ in rows[:3]] == ["1", "2", "3"] and sum(name == "identity (baseline)" for _, name in rows) == 1
    assert 'href="entries/cavity-mini/fno--cavity-mini--20261128T190000Z.json"' in first_table
    for chart in re.findall(r"<svg.*?</svg>", dom.stdout, flags=re.S):
        colours = re.findall(r'<polyline [^>]*stroke="([^"]+)"', chart)
        models = [c for c in colours if c != "#000000"]
        assert len(set(models)) == len(models) == len(colours) - 1  # one black identity, every model its own colour
    shot = tmp_path / "leaderboard.png"
    command = ["chromium", *flags, f"--screenshot={shot}", page.as_uri()]
    result = subprocess.run(command, capture_output=True, timeout=120)
    assert result.returncode == 0 and shot.stat().st_size > 10_000
    artefacts = os.environ.get("CFDBENCH_ARTIFACTS")
    if artefacts:
        shutil.copy(shot, artefacts)


# --------------------------------------------------------------------------- provenance and ids


def test_environment_info_types():
    hardware, software, git_commit = environment_info()
    assert hardware["device"] in ("cpu", "cuda")
    assert isinstance(hardware["cpu"], str) and hardware["cpu"]
    assert hardware["gpu"] is None or isinstance(hardware["gpu"], str)
    assert isinstance(hardware["n_gpus"], int) and hardware["n_gpus"] >= 0
    assert set(software) >= {"python", "torch", "neuraloperator", "cfdbench", "numpy"}
    assert all(isinstance(v, str) and v for v in software.values())
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", git_commit)

    entry = make_entry()
    entry["hardware"], entry["software"], entry["git_commit"] = hardware, software, git_commit
    validate_entry(entry)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_commit_of_a_checkout_and_dirty_flag(tmp_path, monkeypatch):
    """A throwaway repository stands in for the cfdbench checkout."""

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True, capture_output=True)

    monkeypatch.setattr(entry_module, "REPO_ROOT", tmp_path.resolve())
    assert entry_module._git_commit() == "unknown"  # not a checkout
    git("init", "-q")
    (tmp_path / "a.txt").write_text("a")
    git("add", "a.txt")
    git("commit", "-q", "-m", "first")
    assert re.fullmatch(r"[0-9a-f]{40}", entry_module._git_commit())
    (tmp_path / "a.txt").write_text("changed")
    assert re.fullmatch(r"[0-9a-f]{40}-dirty", entry_module._git_commit())
    monkeypatch.setattr(entry_module, "REPO_ROOT", (tmp_path / "sub").resolve())
    (tmp_path / "sub").mkdir()
    assert entry_module._git_commit() == "unknown"  # inside a repository, but not its root


def test_make_entry_id_is_filesystem_safe():
    assert make_entry_id("fno", "cavity-mini", "2026-11-28T19:00:00Z") == "fno--cavity-mini--20261128T190000Z"
    entry_id = make_entry_id("my model/v2", "tube:small", "2026-11-28T20:00:00+01:00")
    assert entry_id == "my-model-v2--tube-small--20261128T190000Z"
    assert re.fullmatch(r"[A-Za-z0-9._-]+", entry_id)
    with pytest.raises(CfdbenchError):
        make_entry_id("///", "cavity", "2026-11-28T19:00:00Z")


# --------------------------------------------------------------------------- submit, verify, publish


def save_run(run_dir, entry: dict) -> dict:
    """An entry in a run folder as `cfdbench evaluate` leaves it: entry.json with a predictions file beside it."""
    predictions = run_dir / f"{entry['entry_id']}.predictions.npz"
    predictions.parent.mkdir(parents=True, exist_ok=True)
    predictions.write_bytes(entry["entry_id"].encode())  # submit checks the digest; tier B reads the contents
    entry["predictions"] = {"file": predictions.name, "sha256": sha256_of(predictions), "encoding": "test"}
    save_entry(entry, run_dir / "entry.json")
    return entry


def tree(folder) -> dict:
    """Every file under ``folder`` with its bytes: what a refused command must leave unchanged."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_submit_checks_the_published_hash_and_refuses_duplicates(tmp_path, monkeypatch):
    from cfdbench.leaderboard import submit

    run_dir = tmp_path / "run"
    entry = save_run(run_dir, make_entry())
    monkeypatch.setattr(submit, "published_hash", lambda dataset: HASH_B)
    with pytest.raises(CfdbenchError, match="card publishes bbbbbbbbbbbb"):
        submit.submit_run(run_dir, tmp_path / "entries")
    monkeypatch.setattr(submit, "published_hash", lambda dataset: HASH_A)
    target = submit.submit_run(run_dir, tmp_path / "entries")
    assert target == tmp_path / "entries" / "cavity-mini" / f"{entry['entry_id']}.json"
    assert "artifacts" not in load_entry(target)  # run-folder paths are dropped
    assert (target.parent / entry["predictions"]["file"]).read_bytes() == (run_dir / entry["predictions"]["file"]).read_bytes()
    save_run(run_dir, make_entry(date="2026-11-28T20:00:00Z"))  # the same submission evaluated again later
    with pytest.raises(CfdbenchError, match="already holds this submission"):
        submit.submit_run(run_dir, tmp_path / "entries")


def _old_format(entry):
    entry["schema_version"] = 2
    del entry["code"]


def _plugin_not_stored(entry):
    entry["model"] |= {"name": "myop-MyOp", "card": None, "source": "/home/me/ops/myop.py:MyOp"}
    entry["code"] = {"kind": "source", "file": "myop.py", "class": "MyOp", "sha256": "d" * 64}


REFUSED = {
    "older format": (_old_format, "written in entry format 2", False),
    "code not stored": (_plugin_not_stored, "operator's code cannot be recovered: its operator's source (myop.py", False),
    "predictions missing": (lambda e: None, "its predictions file", True),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_submit_refuses_an_entry_others_could_not_check_and_changes_nothing(case, tmp_path, monkeypatch):
    """An entry without code, in the old format, or whose predictions do not match, is one readable line,
    and nothing under the leaderboard folder changes."""
    from cfdbench.leaderboard import submit

    mutate, message, drop_predictions = REFUSED[case]
    monkeypatch.setattr(submit, "published_hash", lambda dataset: HASH_A)
    board = tmp_path / "leaderboard"
    save_in_layout(board / "entries", [make_entry(model="unet")])
    before = tree(board)
    entry = make_entry()
    mutate(entry)
    entry = save_run(tmp_path / "run", entry)
    if drop_predictions:
        (tmp_path / "run" / entry["predictions"]["file"]).write_bytes(b"edited")
    result = run_entry_point("leaderboard", "submit", str(tmp_path / "run"), "--entries", str(board / "entries"), cwd=tmp_path)
    assert_one_line_error(result, message)
    assert tree(board) == before


def test_published_hash_comes_from_the_card():
    from cfdbench.data.dataset_dir import content_hash  # noqa: F401  (the hash the card records)
    from cfdbench.leaderboard.submit import published_hash

    assert re.fullmatch(r"[0-9a-f]{64}", published_hash("cavity-mini"))
    with pytest.raises(CfdbenchError, match="no card"):
        published_hash("no-such-data")


def test_compare_numbers_reports_paths():
    from cfdbench.leaderboard.verify import compare_numbers

    assert compare_numbers({"a": [1.0, None], "b": 2}, {"a": [1.0 + 1e-9, None], "b": 2}) == []
    assert compare_numbers({"a": 1.0}, {"a": 1.0, "vrmse": 0.3}) == ["$.vrmse: missing in the entry, re-run 0.3"]
    problems = compare_numbers({"a": [1.0, None], "b": 2}, {"a": [1.01, 0.5], "b": 2})
    assert problems == ["$.a[0]: entry 1.0, re-run 1.01", "$.a[1]: entry None, re-run 0.5"]


# --------------------------------------------------------------------------- tier A


def built_board(tmp_path, entries: list[dict]):
    """A leaderboard folder with ``entries`` (none publishing predictions), listed as awaiting a re-run, and its pages."""
    from cfdbench.leaderboard.awaiting import list_awaiting

    board = tmp_path / "leaderboard"
    save_in_layout(board / "entries", entries)
    list_awaiting(board / "entries", sorted((board / "entries").rglob("*.json")), "scored before v3")
    build_leaderboard(board / "entries", board)
    return board


def test_tier_a_rebuilds_the_pages_and_checks_every_file(tmp_path):
    from cfdbench.leaderboard.verify import verify_board

    board = built_board(tmp_path, three_models())
    assert verify_board(board) == []
    assert "A; awaiting re-run \\(scored before v3\\)" in (board / "README.md").read_text()
    assert "A; awaiting re-run (scored before v3)" in (board / "index.html").read_text()
    verified = run_entry_point("leaderboard", "verify", "--tier", "A", "--entries", str(board / "entries"), cwd=tmp_path)
    assert verified.returncode == 0 and "verified (tier A)" in verified.stdout

    page = board / "index.html"
    page.write_text(page.read_text().replace("1.000e-02", "1.000e-04", 1))  # a hand-edited page
    assert verify_board(board) == [f"{page}: differs from the page built from the entries: run `cfdbench leaderboard build`"]
    build_leaderboard(board / "entries", board)

    path = board / "entries" / "cavity-mini" / "unet--cavity-mini--20261128T190001Z.json"
    edited = load_entry(path).to_dict()
    edited["metrics"]["one_step"]["model"]["nmse"] /= 100  # a score cut 100x, consistent within the entry
    save_entry(edited, path)
    assert any("is not listed, with its current SHA-256" in problem for problem in verify_board(board))
    result = run_entry_point("leaderboard", "verify", "--tier", "A", "--entries", str(board / "entries"), cwd=tmp_path)
    assert_one_line_error(result, "tier A", "unet--cavity-mini--20261128T190001Z.json: has no published predictions")


def test_the_committed_leaderboard_passes_tier_a():
    """CI's tier A: every committed entry valid, its predictions (or its place on the awaiting list) and
    code present with their digests, and the committed pages the ones its entries build."""
    from cfdbench.leaderboard.verify import verify_board

    assert verify_board(Path(__file__).resolve().parents[1] / "leaderboard") == []


COMMITTED = Path(__file__).resolve().parents[1] / "leaderboard" / "entries"


@pytest.fixture(scope="module")
def committed_data(tmp_path_factory) -> Path:
    """A folder holding every dataset that committed entries publish predictions for: the data
    folder's copy when it has one, else generated here (cavity-mini: about 90 s on 2 CPU cores;
    channel180-tiny, one DNS run: about 3 min)."""
    from cfdbench.cards import ChannelCard, data_root, find_card
    from cfdbench.data.generate import generate_dataset
    from cfdbench.data.generate_channel import generate_channel_dataset

    folder = tmp_path_factory.mktemp("committed-data")
    names = {load_entry(path).dataset["name"] for path in entry_paths(COMMITTED) if load_entry(path).predictions}
    if channel_dns_bytes_differ_here() is not None:
        names.discard("channel180-tiny")  # its regenerated bytes would differ: see the tier B test
    for name in sorted(names):
        stored = data_root() / name
        if (stored / "manifest.json").is_file():
            (folder / name).symlink_to(stored.resolve())
        elif isinstance(card := find_card(name), ChannelCard):
            generate_channel_dataset(card, folder / name, fmt="zarr")
        else:
            generate_dataset(card, folder / name)
    return folder


@pytest.mark.slow  # generates the five tiny datasets unless the data folder holds them: ~8 min on 2 cores
@pytest.mark.timeout(1800)
def test_every_committed_entry_passes_tier_b_or_is_listed_as_awaiting_a_rerun(committed_data, tmp_path):
    """CI's tier B: each committed entry with predictions gets every score back from them; every other
    one is on the awaiting list (which the page shows), none passes silently."""
    from cfdbench.leaderboard.awaiting import awaiting_path, awaiting_reruns
    from cfdbench.pipeline import verify_all_predictions

    entries = COMMITTED
    if channel_dns_bytes_differ_here() is not None:
        # The turbulent channel's bytes follow the CPU's MKL code path (conftest): on another kind of
        # CPU its data cannot be regenerated, so its entries are verified where they were made.
        entries = tmp_path / "leaderboard" / "entries"
        shutil.copytree(COMMITTED, entries, ignore=lambda folder, names: ["channel180-tiny"] if Path(folder) == COMMITTED else [])
        shutil.copyfile(awaiting_path(COMMITTED), awaiting_path(entries))
    checked, waiting = verify_all_predictions(entries, committed_data)
    assert checked, "no committed entry publishes predictions"
    assert {path: problems for path, problems in checked.items() if problems} == {}
    assert set(waiting) == {str(entries / name) for name in awaiting_reruns(entries)}


@pytest.mark.slow  # as above
@pytest.mark.timeout(1800)
def test_a_committed_entry_edited_consistently_fails_tier_b(committed_data, tmp_path):
    """One number of a committed entry changed by 1 %, with its curve and windows kept consistent
    (tier A cannot see it): tier B names it."""
    from cfdbench.pipeline import verify_predictions

    path = next(p for p in entry_paths(COMMITTED) if load_entry(p).predictions and load_entry(p).model["name"] != "identity")
    entry = load_entry(path).to_dict()
    shutil.copyfile(path.parent / entry["predictions"]["file"], tmp_path / entry["predictions"]["file"])
    curve = entry["curves"]["model"]["nmse"]["mean"]
    entry["curves"]["model"]["nmse"]["mean"] = [v * 0.99 for v in curve]
    entry["metrics"]["rollout"]["model"]["nmse"] = sum(v * 0.99 for v in curve) / len(curve)
    entry["rollout_windows"]["model"]["nmse"] = {w: v * 0.99 for w, v in entry["rollout_windows"]["model"]["nmse"].items()}
    save_entry(entry, tmp_path / path.name)
    problems = verify_predictions(tmp_path / path.name, committed_data / entry["dataset"]["name"])
    edited = ("$.metrics.rollout.model.nmse", "$.curves.model.nmse", "$.rollout_windows.model.nmse")
    assert problems and all(p.startswith(edited) for p in problems)


@pytest.mark.slow  # cavity-mini (generated unless the data folder has it), one epoch, then the re-run
@pytest.mark.timeout(1800)
def test_a_plugin_run_on_cavity_mini_is_verified_from_its_stored_code_after_its_file_is_deleted(committed_data, tmp_path):
    """The issue's check: `cfdbench run --model /path/myop.py:MyOperator --dataset cavity-mini`, the file
    deleted, `leaderboard verify` tier C reproduces the entry; the entry lists every setting that ran."""
    from dataclasses import fields

    from cfdbench.training.config import TrainConfig

    source = tmp_path / "ops" / "myop.py"
    source.parent.mkdir()
    shutil.copyfile(PLUGIN_FILE, source)
    env = {"CFDBENCH_DATA": str(committed_data)}
    run = ["run", "--model", f"{source}:MyOperator", "--dataset", "cavity-mini", "--epochs", "1", "--set", "model.width=8"]
    run += ["--name", "my-op", "--device", "cpu", "--runs-root", str(tmp_path / "runs")]
    result = run_entry_point(*run, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "has no model card: the trainer's defaults" in result.stdout
    source.unlink()
    (run_dir,) = (tmp_path / "runs").iterdir()
    entry = load_entry(run_dir / "entry.json")
    assert entry.model["name"] == "my-op" and set(entry.training["config"]) == {f.name for f in fields(TrainConfig)}
    verify = ["leaderboard", "verify", str(run_dir / "entry.json"), "--checkpoint", str(run_dir / "checkpoint.pt")]
    verified = run_entry_point(*verify, "--device", "cpu", cwd=tmp_path, env=env)
    assert verified.returncode == 0, verified.stderr
    assert "verified" in verified.stdout


def test_tier_b_lists_entries_awaiting_a_rerun_by_name_and_never_passes_them(tmp_path):
    board = built_board(tmp_path, three_models()[:1])
    result = run_entry_point("leaderboard", "verify", "--tier", "B", "--entries", str(board / "entries"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "not verified (tier B)" in result.stdout and "awaiting re-run (scored before v3)" in result.stdout
    assert "verified (tier B) 0 entries from their predictions; 1 awaiting re-run" in result.stdout


# --------------------------------------------------------------------------- tiers B and C on a real run


PLUGIN_FILE = Path(__file__).resolve().parents[1] / "examples" / "my_operator" / "my_operator" / "model.py"


@pytest.fixture(scope="module")
def plugin_run(tiny_dataset, tmp_path_factory):
    """A plug-in operator from a file outside the repository, trained for one epoch and evaluated by
    `cfdbench run`; its file is deleted afterwards, as a researcher's would move."""
    from cfdbench.pipeline import run

    folder = tmp_path_factory.mktemp("plugin")
    source = folder / "ops" / "myop.py"
    source.parent.mkdir()
    shutil.copyfile(PLUGIN_FILE, source)
    run_dir, entry = run(
        f"{source}:MyOperator", str(tiny_dataset.path), "cpu", {"epochs": 1, "batch_size": 8}, rollout_steps=3,
        runs_root=folder / "runs", show_progress=False, settings=["model.width=8"], name="my-op",
    )  # fmt: skip
    source.unlink()
    return run_dir, entry


def test_a_plugin_entry_lists_its_whole_recipe_and_stores_its_code(plugin_run):
    from dataclasses import fields

    from cfdbench.training.config import TrainConfig

    run_dir, entry = plugin_run
    assert entry["model"]["name"] == "my-op" and entry["entry_id"].startswith("my-op--")
    assert entry["model"]["config"] == {"width": 8}
    recipe = entry["training"]["config"]
    assert set(recipe) == {f.name for f in fields(TrainConfig)}  # every setting that ran
    assert recipe["lr"] == TrainConfig.lr and recipe["scheduler"] == TrainConfig.scheduler
    sources = {key: "command line" if key in ("epochs", "batch_size") else "default" for key in recipe}
    assert entry["training"]["config_sources"] == sources  # no card: every other setting is the trainer's default
    code = entry["code"]
    assert code["kind"] == "source" and code["file"] == "myop.py" and code["class"] == "MyOperator"
    assert sha256_of(run_dir / "code" / f"{code['sha256']}.py") == code["sha256"] == sha256_of(PLUGIN_FILE)


def test_tier_c_reruns_a_plugin_from_its_stored_code_after_its_file_is_gone(plugin_run, tiny_dataset, tmp_path):
    from cfdbench.pipeline import verify_checkpoint

    run_dir, entry = plugin_run
    checkpoint = run_dir / "checkpoint.pt"
    assert verify_checkpoint(run_dir / "entry.json", checkpoint, "cpu", dataset=tiny_dataset.path) == []
    edited = copy.deepcopy(entry.to_dict())  # a consistent edit: curve and score both 2 % better
    steps = edited["task"]["rollout_steps"]
    edited["curves"]["model"]["nmse"]["mean"] = [v * 0.98 for v in entry["curves"]["model"]["nmse"]["mean"]]
    edited["metrics"]["rollout"]["model"]["nmse"] = sum(edited["curves"]["model"]["nmse"]["mean"]) / steps
    edited["rollout_windows"]["model"]["nmse"] = {w: v * 0.98 for w, v in entry["rollout_windows"]["model"]["nmse"].items()}
    shutil.copytree(run_dir, tmp_path / "edited")
    save_entry(edited, tmp_path / "edited" / "entry.json")
    problems = verify_checkpoint(tmp_path / "edited" / "entry.json", checkpoint, "cpu", dataset=tiny_dataset.path)
    assert any(p.startswith("$.metrics.rollout.model.nmse") for p in problems)
    verify = ["leaderboard", "verify", str(tmp_path / "edited" / "entry.json"), "--checkpoint", str(checkpoint)]
    cli = run_entry_point(*verify, "--device", "cpu", "--dataset", str(tiny_dataset.path), cwd=tmp_path)
    assert_one_line_error(cli, "not reproduced within rtol")


def test_tier_b_recomputes_every_score_from_the_published_predictions(plugin_run, tiny_dataset, tmp_path):
    """The predictions beside the entry give back every score exactly; an edit kept consistent across
    curve, score and windows, which tier A cannot see, fails."""
    from cfdbench.pipeline import verify_predictions

    run_dir, entry = plugin_run
    assert verify_predictions(run_dir / "entry.json", tiny_dataset.path) == []
    assert (run_dir / entry["predictions"]["file"]).stat().st_size < 200_000
    shutil.copytree(run_dir, tmp_path / "edited")
    edited = entry.to_dict()
    edited["curves"]["model"]["mae"]["mean"] = [v * 0.98 for v in entry["curves"]["model"]["mae"]["mean"]]
    edited["metrics"]["rollout"]["model"]["mae"] = sum(edited["curves"]["model"]["mae"]["mean"]) / entry["task"]["rollout_steps"]
    edited["rollout_windows"]["model"]["mae"] = {w: v * 0.98 for w, v in entry["rollout_windows"]["model"]["mae"].items()}
    save_entry(edited, tmp_path / "edited" / "entry.json")
    problems = verify_predictions(tmp_path / "edited" / "entry.json", tiny_dataset.path)
    edited_paths = ("$.metrics.rollout.model.mae", "$.curves.model.mae", "$.rollout_windows.model.mae")
    assert problems and all(p.startswith(edited_paths) for p in problems)


def test_predictions_that_do_not_match_their_entry_are_one_readable_line(plugin_run, tiny_dataset, tmp_path):
    run_dir, entry = plugin_run
    shutil.copytree(run_dir, tmp_path / "run")
    predictions = tmp_path / "run" / entry["predictions"]["file"]
    predictions.write_bytes(predictions.read_bytes()[:-1] + b"x")
    verify = ["leaderboard", "verify", str(tmp_path / "run" / "entry.json"), "--tier", "B", "--dataset", str(tiny_dataset.path)]
    assert_one_line_error(run_entry_point(*verify, cwd=tmp_path), "does not match its entry")
    predictions.unlink()
    assert_one_line_error(run_entry_point(*verify, cwd=tmp_path), "is not beside it")


def test_publish_wandb_offline_writes_a_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from cfdbench.leaderboard.publish import publish_wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    save_in_layout(tmp_path / "entries", three_models())
    run_dir = publish_wandb(tmp_path / "entries", project="cfdbench-test", runs_root=tmp_path / "runs")
    assert run_dir.is_dir() and list(run_dir.glob("*.wandb"))


# --------------------------------------------------------------------------- hostile and minimal entries


@pytest.mark.parametrize(
    "where, value",
    [
        (("model", "name"), "fno\n"),
        (("entry_id",), "fno--cavity-mini--20261128T190000Z\n"),
        (("dataset", "split"), "test\n"),
        (("task", "fields", 0), "u\n"),
        (("dataset", "version"), "1.0.0\n## injected heading"),
        (("model", "card"), "../../etc/passwd"),
    ],
)
def test_names_with_a_trailing_newline_or_a_parent_path_are_refused(where, value):
    """JSON Schema's `$` also matches before a final newline in Python, and paths could climb out:
    the patterns are anchored at the true end, strings hold no control characters, paths no '..'."""
    entry = make_entry()
    target = entry
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    with pytest.raises(CfdbenchError, match=r"invalid leaderboard entry: \$\.") as error:
        validate_entry(entry)
    assert "\n" not in str(error.value)


def _minimal_hybrid() -> dict:
    return {
        "pressure_solver": "DCDM",
        "tolerance": 1e-4,
        "iterations_mean": 12.0,
        "divergence_rms": {"hybrid": 1e-6, "exact": 1e-7},
        "seconds_per_rollout": {"hybrid": 3.0, "exact": 1.0},
        "exact_rerun_nmse": 1e-12,
    }


def test_an_entry_with_only_the_schemas_required_hybrid_keys_renders(tmp_path):
    """Whatever the schema accepts, the renderer shows: a hybrid block with only its required keys."""
    entry = make_entry(model="dcdm")
    entry["hybrid"] = _minimal_hybrid()
    validate_entry(entry)
    page = render_leaderboard([entry])
    assert "dcdm (hybrid: the dataset's solver projecting with DCDM to relative residual" in page
    with pytest.raises(CfdbenchError, match=r"\$\.hybrid"):  # and what it cannot show is refused up front
        validate_entry({**entry, "hybrid": {**_minimal_hybrid(), "divergence_rms": {"hybrid": 1e-6}}})


def test_hostile_strings_are_escaped_in_the_markdown_page(tmp_path):
    """Scripts, event handlers, javascript: links, pipes and headings in an entry's free-form strings
    reach the page as literal text: no raw HTML, no extra table cells, no new headings."""
    entry = make_entry()
    entry["dataset"]["version"] = "1.0|<script>alert(1)</script> # [x](javascript:alert(1))"
    hybrid = make_entry(model="dcdm")
    hybrid["hybrid"] = {**_minimal_hybrid(), "pressure_solver": '<img src=x onerror="alert(1)"> | ## pwned'}
    hybrid["hybrid"]["trained_on"] = {"case": "<b>geo</b>", "test_geometry_held_out": True}
    for e in (entry, hybrid):
        validate_entry(e)
    page = render_leaderboard([entry, hybrid])
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "](javascript:" not in page
    assert "## pwned" not in page and not any(line.startswith("## pwned") for line in page.splitlines())
    table_rows = [line for line in page.splitlines() if line.startswith("| ") and "fno" in line]
    header = next(line for line in page.splitlines() if line.startswith("| rank"))
    assert table_rows and all(line.replace("\\|", "").count("|") == header.count("|") for line in table_rows)
