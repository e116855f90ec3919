"""Building the leaderboard's pages from its entries: the Markdown page, the HTML page and the rollout
charts, written atomically (:func:`build_leaderboard`), or returned for tier A to compare with the
committed ones (:func:`render_pages`). Tables and Markdown come from :mod:`~cfdbench.leaderboard.render`,
the HTML from :mod:`~cfdbench.leaderboard.html`.
"""

from __future__ import annotations

from pathlib import Path

from cfdbench.entries.entry import entry_paths, load_entry
from cfdbench.io import write_text_atomic
from cfdbench.leaderboard.awaiting import awaiting_reason, awaiting_reruns, prune_awaiting
from cfdbench.leaderboard.html import render_html, rollout_chart
from cfdbench.leaderboard.render import check_unique_ids, dataset_tables, figure_name, hash_groups, render_leaderboard, with_link


def build_leaderboard(entries_dir: Path, out_dir: Path, baseline: str = "identity") -> list[Path]:
    """Load and validate every entry under ``entries_dir``; write ``out_dir/README.md``,
    ``out_dir/index.html`` and the rollout charts ``out_dir/figures/*.svg``, each atomically.

    Any invalid entry raises a CfdbenchError naming its file before anything is written. The
    figures folder belongs to the build: charts of tables that no longer exist are removed, and so
    are the awaiting-rerun listings of entry files that no longer exist.
    """
    out_dir = Path(out_dir)
    pages = render_pages(entries_dir, out_dir, baseline)
    prune_awaiting(entries_dir)
    written = [write_text_atomic(out_dir / name, text) for name, text in pages.items()]
    for stale in (out_dir / "figures").glob("*.svg"):
        if f"figures/{stale.name}" not in pages:
            stale.unlink()
    return written


def render_pages(entries_dir: Path, out_dir: Path, baseline: str = "identity") -> dict[str, str]:
    """What the build writes, by path relative to ``out_dir``: the Markdown page, the HTML page and the
    rollout charts, rendered from the validated entries under ``entries_dir``."""
    entries_dir, out_dir = Path(entries_dir), Path(out_dir)
    awaiting = awaiting_reruns(entries_dir)
    entries = [
        with_link(load_entry(path), path, out_dir, awaiting_reason(path, entries_dir, awaiting))
        for path in entry_paths(entries_dir)
    ]
    check_unique_ids(entries)
    figures = {
        f"figures/{figure_name(dataset, split, group)}": rollout_chart(dataset, group)
        for dataset, split, tables in dataset_tables(entries)
        for table in tables
        if table.block == "rollout"
        for group in hash_groups(table)
    }
    return {"README.md": render_leaderboard(entries), "index.html": render_html(entries, baseline), **figures}
