"""Downloading CFDBench's archives from a real HTTP server on loopback, with injected faults:
a dropped connection (resumed with Range), 404, 500 then success, a wrong digest, a truncated
archive, unsafe entries. Nothing is ever left half-written."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from cfdbench.data import cfdbench_release as release_module
from cfdbench.data.cfdbench_release import Release, download_release, find_cases, read_case
from cfdbench.data.download import Archive, DownloadError
from cfdbench.errors import CfdbenchError


def case_zip(entries: dict[str, bytes] | None = None, cases: int = 3, frames: int = 4) -> bytes:
    """A small CFDBench-like archive: cavity/{bc,prop}/caseNNNN/{u.npy, v.npy, case.json}."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(cases):
            subset = "bc" if i < 2 else "prop"
            folder = f"data/cavity/{subset}/case{i:04d}"
            for name in ("u", "v"):
                array = io.BytesIO()
                np.save(array, np.random.default_rng(i).normal(size=(frames, 8, 8)))
                archive.writestr(f"{folder}/{name}.npy", array.getvalue())
            params = {"vel_top": 1.0 + i, "density": 1.0, "viscosity": 1e-5, "height": 0.01, "width": 0.01}
            archive.writestr(f"{folder}/case.json", json.dumps(params))
        for name, data in (entries or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


class Server:
    """A loopback HTTP server with Range support and per-path fault scripts."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, list[str]] = {}  # path -> faults to apply to successive requests
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("/resolve/main/", 1)[-1]
                server.requests.append((path, self.headers.get("Range")))
                fault = server.faults.get(path, []).pop(0) if server.faults.get(path) else None
                if fault in ("404", "500") or path not in server.files:
                    self.send_error(int(fault or 404))
                    return
                data = server.files[path]
                start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if fault == "drop":  # promise everything, send half, hang up
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def registry(monkeypatch):
    """The release registry with one small cavity archive whose digest is not pinned (as the real one)."""
    archives: dict[str, list[Archive]] = {"cavity": [Archive("cavity.zip", size=None)]}
    template = "{endpoint}/datasets/{repository}/resolve/main/{path}"
    release = Release("chen-yingfa/CFDBench", "http://unused.invalid", template, archives)
    monkeypatch.setattr(release_module, "load_release", lambda: release)
    return archives


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".")]


def download(root: Path, server: Server, **kwargs):
    return download_release(["cavity"], root, endpoint=server.url, backoff=0.01, **kwargs)


def test_download_verifies_extracts_and_reuses(server, registry, tmp_path):
    data = case_zip()
    server.files["cavity.zip"] = data
    folders = download(tmp_path, server)
    cases = find_cases(folders["cavity"], "cavity")
    assert [p.name for p in cases["prop"]] == ["case0002"] and len(cases["bc"]) == 2
    lock = json.loads((tmp_path / "release.lock.json").read_text())
    assert lock["cavity.zip"]["sha256"] == hashlib.sha256(data).hexdigest()
    n_requests = len(server.requests)
    download(tmp_path, server)  # verified from disk, not fetched again
    assert len(server.requests) == n_requests and not leftovers(tmp_path)


def test_dropped_connection_resumes_with_range(server, registry, tmp_path):
    data = case_zip(cases=6, frames=40)
    server.files["cavity.zip"] = data
    server.faults["cavity.zip"] = ["drop", "drop"]
    download(tmp_path, server)
    assert (tmp_path / "archives" / "cavity.zip").read_bytes() == data
    ranges = [r for _, r in server.requests if r]
    assert len(ranges) == 2 and ranges[0] == f"bytes={len(data) // 2}-"


def test_server_error_then_success_is_retried(server, registry, tmp_path):
    server.files["cavity.zip"] = case_zip()
    server.faults["cavity.zip"] = ["500", "500"]
    download(tmp_path, server)
    assert len(server.requests) == 3


def test_not_found_is_final_and_leaves_nothing(server, registry, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(tmp_path, server)
    assert len(server.requests) == 1
    assert not (tmp_path / "archives" / "cavity.zip").exists() and not leftovers(tmp_path)


def test_persistent_failure_gives_up_with_a_resumable_part(server, registry, tmp_path):
    server.files["cavity.zip"] = case_zip(frames=40)
    server.faults["cavity.zip"] = ["drop"] * 5  # 3 spent by the first call, 2 by the rerun
    with pytest.raises(DownloadError, match="giving up after 3 attempts.*rerun to resume"):
        download(tmp_path, server, retries=2)
    assert not (tmp_path / "archives" / "cavity.zip").exists()
    download(tmp_path, server)  # the rerun resumes and completes
    assert (tmp_path / "archives" / "cavity.zip").read_bytes() == server.files["cavity.zip"]


def test_wrong_digest_is_rejected_and_deleted(server, registry, tmp_path):
    server.files["cavity.zip"] = case_zip()
    registry["cavity"][0] = Archive("cavity.zip", sha256="0" * 64)
    with pytest.raises(DownloadError, match="does not match the registry"):
        download(tmp_path, server)
    assert not list((tmp_path / "archives").glob("*")) and not leftovers(tmp_path)


def test_recorded_digest_catches_a_changed_file(server, registry, tmp_path):
    server.files["cavity.zip"] = case_zip()
    download(tmp_path, server)
    (tmp_path / "archives" / "cavity.zip").write_bytes(case_zip(cases=2))  # tampered after the first download
    with pytest.raises(DownloadError, match="release.lock.json"):
        download(tmp_path, server)


def test_truncated_archive_is_reported_and_removed(server, registry, tmp_path):
    data = case_zip()
    server.files["cavity.zip"] = data[: len(data) * 2 // 3]
    with pytest.raises(CfdbenchError, match="not a readable zip archive"):
        download(tmp_path, server)
    assert not (tmp_path / "cavity").exists() and not (tmp_path / "archives" / "cavity.zip").exists()
    assert "cavity.zip" not in json.loads((tmp_path / "release.lock.json").read_text())
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("entry", ["../escape.txt", "data/../../escape.txt", "/abs/escape.txt"])
def test_entries_escaping_the_target_are_refused(server, registry, tmp_path, entry):
    server.files["cavity.zip"] = case_zip({entry: b"owned"})
    with pytest.raises(CfdbenchError, match="would escape the target folder"):
        download(tmp_path / "root", server)
    assert not list(tmp_path.rglob("escape.txt")) and not (tmp_path / "root" / "cavity").exists()


def test_symlink_entries_are_refused(server, registry, tmp_path):
    buffer = io.BytesIO(case_zip())
    with zipfile.ZipFile(buffer, "a") as archive:
        link = zipfile.ZipInfo("data/cavity/bc/link")
        link.external_attr = 0o120777 << 16  # a symbolic link to /etc/passwd
        archive.writestr(link, "/etc/passwd")
    server.files["cavity.zip"] = buffer.getvalue()
    with pytest.raises(CfdbenchError, match="symbolic link"):
        download(tmp_path, server)


def test_from_path_ingests_a_local_archive_and_mirror_env(server, registry, tmp_path, monkeypatch):
    own = tmp_path / "mine"
    own.mkdir()
    (own / "cavity.zip").write_bytes(case_zip())
    folders = download_release(["cavity"], tmp_path / "a", from_path=own)
    assert len(find_cases(folders["cavity"], "cavity")["bc"]) == 2 and not server.requests
    server.files["cavity.zip"] = case_zip()
    monkeypatch.setenv("CFDBENCH_HF_ENDPOINT", server.url)
    download_release(["cavity"], tmp_path / "b", backoff=0.01)
    assert server.requests == [("cavity.zip", None)]


def test_not_enough_disk_space_stops_before_any_request(server, registry, tmp_path, monkeypatch):
    registry["cavity"][0] = Archive("cavity.zip", size=10**15)
    with pytest.raises(CfdbenchError, match="not enough disk space"):
        download(tmp_path, server)
    assert not server.requests


def test_bad_cases_are_reported_by_path(tmp_path):
    folder = tmp_path / "cavity" / "bc" / "case0007"
    folder.mkdir(parents=True)
    np.save(folder / "u.npy", np.zeros((3, 8, 8)))
    with pytest.raises(CfdbenchError, match="case0007: missing v.npy"):
        read_case(folder, "cavity", "bc")
    np.save(folder / "v.npy", np.zeros((3, 8, 9)))
    (folder / "case.json").write_text("{}")
    with pytest.raises(CfdbenchError, match=r"u has shape \(3, 8, 8\) but v has \(3, 8, 9\)"):
        read_case(folder, "cavity", "bc")
    u = np.zeros((3, 8, 8))
    u[1, 2, 2] = np.nan
    np.save(folder / "u.npy", u)
    np.save(folder / "v.npy", np.zeros((3, 8, 8)))
    with pytest.raises(CfdbenchError, match=r"NaN or Inf in frames \[1\]"):
        read_case(folder, "cavity", "bc")
    np.save(folder / "u.npy", np.zeros((0, 8, 8)))
    np.save(folder / "v.npy", np.zeros((0, 8, 8)))
    with pytest.raises(CfdbenchError, match="T > 0"):
        read_case(folder, "cavity", "bc")
    with pytest.raises(CfdbenchError, match="unknown CFDBench problem 'pipe'"):
        find_cases(tmp_path, "pipe")


def test_cli_download_from_a_local_archive_and_bad_names(tmp_path):
    import os
    import subprocess
    import sys

    own = tmp_path / "mine"
    own.mkdir()
    (own / "cavity.zip").write_bytes(case_zip())
    env = {**os.environ, "CFDBENCH_DATA": str(tmp_path / "data"), "COLUMNS": "200"}
    command = [sys.executable, "-m", "cfdbench", "data", "download"]
    done = subprocess.run([*command, "cfdbench/cavity", "--from", str(own)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "2 bc cases" in done.stdout and "1 prop cases" in done.stdout
    assert (tmp_path / "data" / "cfdbench-release" / "cavity").is_dir()
    bad = subprocess.run([*command, "cfdbench/pipe"], capture_output=True, text=True, env=env)
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.returncode == 2 and len(lines) == 1 and "unknown CFDBench problem 'cfdbench/pipe'" in lines[0]
