"""Datasets over plain HTTP(S): a folder served by a real HTTP server on 127.0.0.1 opens, trains and
evaluates by its URL like a local one; a damaged object or a URL without a dataset is one line, and
nothing unverified is cached."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest
from conftest import SMALL_FNO, assert_one_line_error, run_entry_point, train_and_evaluate

from cfdbench.data.dataset_dir import content_hash
from cfdbench.data.remote import cache_root
from cfdbench.data.resolve import open_dataset

pytest.importorskip("aiohttp")  # fsspec's http:// driver

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(folder, its http:// address): a threaded static file server on a free loopback port, and an empty cache."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("CFDBENCH_CACHE", str(tmp_path / "cache"))
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def cached_files() -> list[str]:
    return sorted(p.name for p in cache_root().glob("*/cases/*")) if cache_root().is_dir() else []


def test_info_train_and_evaluate_from_an_http_url(tiny_dataset, served, tmp_path):
    root, address = served
    shutil.copytree(tiny_dataset.path, root / "cavity-tiny")
    url = f"{address}/cavity-tiny"
    info = run_entry_point("data", "info", url, cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert content_hash(tiny_dataset.path) in info.stdout
    train_and_evaluate(url, tmp_path)
    assert cached_files() == sorted(p.name for p in tiny_dataset.path.glob("cases/*.h5"))  # verified, no temporaries
    remote = open_dataset(url)
    case = remote.case_ids[0]
    assert remote[case].equals(tiny_dataset[case])


def test_a_damaged_object_or_a_folder_without_a_dataset_is_one_line(tiny_dataset, served, tmp_path):
    root, address = served
    shutil.copytree(tiny_dataset.path, root / "cavity-tiny")
    victim: Path = root / "cavity-tiny" / "cases" / f"{tiny_dataset.split('train')[0]}.h5"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    victim.write_bytes(bytes(data))
    url = f"{address}/cavity-tiny"
    result = run_entry_point("train", *SMALL_FNO, "--dataset", url, "--epochs", "1", "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert_one_line_error(result, f"{url}/cases/{victim.name}", "does not match the manifest", "nothing was cached")
    assert victim.name not in cached_files() and not any(".tmp-" in name for name in cached_files())
    assert not (tmp_path / "run").exists()
    (root / "empty").mkdir()
    for missing in (f"{address}/empty", f"{address}/no-such-folder"):
        assert_one_line_error(run_entry_point("data", "info", missing, cwd=tmp_path), missing, "has no manifest.json")
