"""Leaderboard entries (schema, validation, atomic files, provenance) and the rendered page."""

from __future__ import annotations

import copy
import json
import os
import random
import re
import shutil
import subprocess

import pytest
from conftest import run_entry_point

from cfdbench.errors import CfdbenchError
from cfdbench.leaderboard import entry as entry_module
from cfdbench.leaderboard.entry import (
    SCHEMA_PATH,
    SCHEMA_VERSION,
    environment_info,
    load_entries,
    load_entry,
    make_entry_id,
    save_entry,
    validate_entry,
)
from cfdbench.leaderboard.render import build_leaderboard, format_number, render_leaderboard

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
        "schema_version": 2,
        "entry_id": make_entry_id(model, dataset, date),
        "date": date,
        "model": {
            "name": model,
            "card": f"models/{model}.yaml",
            "config": {"n_modes": [24, 22]},
            "parameter_count": 1188706,
            "reference_parameter_count": 1188706,
        },
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
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$id"] == "https://cfdbench.invalid/schemas/leaderboard-entry-v2.json"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert SCHEMA_VERSION == 2


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
    "schema version": (_set(("schema_version",), 1), "$.schema_version", "reads version(s) 2"),
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
    assert "(entries/fno--cavity-mini--20261128T190000Z.json)" in blocks[0][0]
    assert "1.0.0 `aaaaaaaa`" in blocks[0][0] and "2026-11-28" in blocks[0][0]


def test_render_is_deterministic():
    entries = three_models()
    first = render_leaderboard(entries)
    shuffled = copy.deepcopy(entries)
    random.Random(0).shuffle(shuffled)
    assert render_leaderboard(shuffled).encode() == first.encode()


def test_identity_rows_per_dataset_hash_and_disagreement_is_an_error():
    entries = [make_entry(model="fno"), make_entry(model="unet", content_hash=HASH_B, identity_nmse=0.9)]
    blocks = table_blocks(render_leaderboard(entries))
    assert all(sum("**identity**" in row for row in rows) == 2 for rows in blocks)

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


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no headless Chromium (Debian package chromium)")
def test_page_renders_in_headless_chromium(tmp_path):
    """The page in a real browser: after its script ran, the DOM holds every table, a hostile name
    (refused by the entry schema, rendered here anyway) stays text, and a click on a header sorts
    the rows by number; a screenshot is kept as an artefact."""
    from cfdbench.leaderboard.html import render_html

    evil = make_entry(model="x", nmse=0.02)
    evil["model"]["name"] = "<img src=x onerror=alert(1)>"
    evil["entry_id"] = "evil--cavity-mini--20261128T190009Z"
    click_nmse = "<script>document.querySelector('table.sortable').tHead.rows[0].cells[2].click();</script>"
    page = tmp_path / "index.html"
    page.write_text(render_html(three_models() + [evil]).replace("</body>", click_nmse + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    dom = subprocess.run(["chromium", *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="sortable"') == 3 and "<img" not in dom.stdout
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom.stdout
    first_table = dom.stdout.split('class="sortable"')[1]
    names = re.findall(r'<tr[^>]*><td class="text">([^<]*)</td>', first_table)
    assert names == ["fno", "&lt;img src=x onerror=alert(1)&gt;", "unet", "identity (baseline)", "worse"]  # by NMSE
    shot = tmp_path / "leaderboard.png"
    command = ["chromium", *flags, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()]
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


def test_submit_checks_the_published_hash_and_refuses_duplicates(tmp_path, monkeypatch):
    from cfdbench.leaderboard import submit

    run_dir = tmp_path / "run"
    entry = make_entry()
    save_entry(entry, run_dir / "entry.json")
    monkeypatch.setattr(submit, "published_hash", lambda dataset: HASH_B)
    with pytest.raises(CfdbenchError, match="card publishes bbbbbbbbbbbb"):
        submit.submit_run(run_dir, tmp_path / "entries")
    monkeypatch.setattr(submit, "published_hash", lambda dataset: HASH_A)
    target = submit.submit_run(run_dir, tmp_path / "entries")
    assert target == tmp_path / "entries" / "cavity-mini" / f"{entry['entry_id']}.json"
    assert "artifacts" not in load_entry(target)  # run-folder paths are dropped
    again = make_entry(date="2026-11-28T20:00:00Z")  # the same submission evaluated again later
    save_entry(again, run_dir / "entry.json")
    with pytest.raises(CfdbenchError, match="already holds this submission"):
        submit.submit_run(run_dir, tmp_path / "entries")


def test_published_hash_comes_from_the_card():
    from cfdbench.data.dataset_dir import content_hash  # noqa: F401  (the hash the card records)
    from cfdbench.leaderboard.submit import published_hash

    assert re.fullmatch(r"[0-9a-f]{64}", published_hash("cavity-mini"))
    with pytest.raises(CfdbenchError, match="no card"):
        published_hash("no-such-data")


def test_compare_numbers_reports_paths():
    from cfdbench.leaderboard.submit import compare_numbers

    assert compare_numbers({"a": [1.0, None], "b": 2}, {"a": [1.0 + 1e-9, None], "b": 2}) == []
    assert compare_numbers({"a": 1.0}, {"a": 1.0, "vrmse": 0.3}) == ["$.vrmse: missing in the entry, re-run 0.3"]
    problems = compare_numbers({"a": [1.0, None], "b": 2}, {"a": [1.01, 0.5], "b": 2})
    assert problems == ["$.a[0]: entry 1.0, re-run 1.01", "$.a[1]: entry None, re-run 0.5"]


def test_verify_reproduces_an_evaluation_and_catches_an_edited_one(tiny_dataset, tmp_path):
    from cfdbench.leaderboard.submit import verify_entry
    from cfdbench.pipeline import evaluate_checkpoint

    run_dir = tmp_path / "run"
    command = ["train", "--model", "resnet", "--dataset", str(tiny_dataset.path), "--epochs", "1"]
    result = run_entry_point(*command, "--run-dir", str(run_dir), "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    checkpoint = run_dir / "checkpoint.pt"
    _, entry = evaluate_checkpoint(checkpoint, str(tiny_dataset.path), "test", 3, 0, "cpu", run_dir)
    assert {"rollout_gif", "spectra_plot"} <= set(entry["artifacts"]) and (run_dir / "rollout.gif").stat().st_size > 0
    save_entry(entry, run_dir / "entry.json")
    assert verify_entry(run_dir / "entry.json", checkpoint, "cpu", dataset=tiny_dataset.path) == []
    edited = copy.deepcopy(entry)  # a consistent edit: curve and score both 2 % better
    edited["curves"]["model"]["nmse"]["mean"] = [v * 0.98 for v in entry["curves"]["model"]["nmse"]["mean"]]
    edited["metrics"]["rollout"]["model"]["nmse"] = sum(edited["curves"]["model"]["nmse"]["mean"]) / 3
    edited["rollout_windows"]["model"]["nmse"] = {w: v * 0.98 for w, v in entry["rollout_windows"]["model"]["nmse"].items()}
    save_entry(edited, tmp_path / "edited.json")
    problems = verify_entry(tmp_path / "edited.json", checkpoint, "cpu", dataset=tiny_dataset.path)
    assert any(p.startswith("$.metrics.rollout.model.nmse") for p in problems)
    verify = ["leaderboard", "verify", str(tmp_path / "edited.json"), "--checkpoint", str(checkpoint)]
    cli = run_entry_point(*verify, "--device", "cpu", "--dataset", str(tiny_dataset.path), cwd=tmp_path)
    assert cli.returncode == 2 and "not reproduced within rtol" in cli.stderr


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
