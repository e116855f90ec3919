"""Datasets on object storage: push, info, train and evaluate against a real S3-compatible server
(moto's, on 127.0.0.1), a connection dropped mid-object, a tampered object, and bad URLs."""

from __future__ import annotations

import importlib.util
import json
import socket
import threading

import pytest
from conftest import SMALL_FNO, assert_one_line_error, run_entry_point, train_and_evaluate

from cfdbench.data.dataset_dir import content_hash
from cfdbench.data.remote import cache_root, filesystem, open_remote, push_dataset
from cfdbench.data.resolve import open_dataset
from cfdbench.errors import CfdbenchError, DatasetNotFoundError

moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")

@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server on a free loopback port, for this module's tests."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch, tmp_path):
    """Credentials and endpoint in the environment, an empty cache; returns a fresh bucket's URL."""
    set_s3_environment(monkeypatch, s3_endpoint)
    monkeypatch.setenv("CFDBENCH_CACHE", str(tmp_path / "cache"))
    bucket = f"s3://bucket-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    fs, path = filesystem(bucket)
    fs.mkdir(path)
    return bucket


def set_s3_environment(monkeypatch, endpoint: str) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",  # no look-ups of a cloud machine's credentials
    }.items():
        monkeypatch.setenv(name, value)


def cached_case_entries() -> list[str]:
    """Every entry (case files and temporaries) under the cache's case folders."""
    return sorted(p.name for p in cache_root().glob("*/cases/*")) if cache_root().is_dir() else []


def test_push_info_train_evaluate_and_verify_from_s3(tiny_dataset, s3, tmp_path):
    url = f"{s3}/cavity-tiny"
    pushed = run_entry_point("data", "push", str(tiny_dataset.path), url, cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    info = run_entry_point("data", "info", url, cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert content_hash(tiny_dataset.path) in info.stdout and "1 in the cache" in info.stdout
    run = train_and_evaluate(url, tmp_path)
    assert cached_case_entries() == sorted(p.name for p in tiny_dataset.path.glob("cases/*.h5"))  # verified, no temporaries
    entry = json.loads((run / "entry.json").read_text())
    assert entry["dataset"]["content_hash"] == content_hash(tiny_dataset.path)
    verify = run_entry_point("leaderboard", "verify", str(run / "entry.json"), "--checkpoint", str(run / "checkpoint.pt"),
                             "--dataset", url, "--device", "cpu", cwd=tmp_path)  # fmt: skip
    assert verify.returncode == 0 and "verified" in verify.stdout, verify.stderr
    remote = open_dataset(url)
    case = remote.case_ids[0]
    assert remote[case].equals(tiny_dataset[case])  # the labelled view, from the cache


def test_the_manifest_is_pushed_last(tiny_dataset, s3, monkeypatch):
    """While a push (here, a re-push over a complete dataset) is under way, readers see no dataset."""
    url = f"{s3}/cavity-tiny"
    push_dataset(tiny_dataset.path, url)
    fs_class = type(filesystem(url)[0])
    seen: list[str] = []
    original = fs_class.put_file

    def put_file(self, local, remote, *args, **kwargs):
        if not seen:
            with pytest.raises(DatasetNotFoundError, match="has no manifest.json"):
                open_remote(url)
        seen.append(remote.rsplit("/", 1)[-1])
        return original(self, local, remote, *args, **kwargs)

    monkeypatch.setattr(fs_class, "put_file", put_file)
    push_dataset(tiny_dataset.path, url)
    assert seen[-1] == "manifest.json" and len(seen) == len(tiny_dataset) + 3  # cases, splits, stats, manifest
    assert open_remote(url).manifest == tiny_dataset.manifest


class DroppingProxy:
    """A loopback TCP proxy to ``port`` that cuts a connection once the server has sent it
    ``drop_after`` bytes: the first such connection only, or every one (``always``)."""

    def __init__(self, port: int, drop_after: int, always: bool = False):
        self.port, self.drop_after, self.always, self.drops = port, drop_after, always, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.port))
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, responses: bool) -> None:
        sent = 0
        try:
            while data := source.recv(65536):
                if responses and sent + len(data) > self.drop_after and (self.always or self.drops == 0):
                    self.drops += 1
                    sink.sendall(data[: self.drop_after - sent])
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            end.close()

    def close(self) -> None:
        self.listener.close()


def test_a_connection_dropped_mid_object_is_resumed(tiny_dataset, s3, s3_endpoint, monkeypatch):
    url = f"{s3}/cavity-tiny"
    push_dataset(tiny_dataset.path, url)
    proxy = DroppingProxy(int(s3_endpoint.rsplit(":", 1)[1]), drop_after=40_000)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.address)
    try:
        remote = open_remote(url)
        for case_id in remote.case_ids:
            assert remote.case_path(case_id).read_bytes() == tiny_dataset.case_path(case_id).read_bytes()
    finally:
        proxy.close()
    assert proxy.drops == 1


def test_a_connection_that_keeps_dropping_is_one_line_and_caches_nothing(tiny_dataset, s3, s3_endpoint, monkeypatch):
    url = f"{s3}/cavity-tiny"
    push_dataset(tiny_dataset.path, url)
    remote = open_remote(url)  # the manifest and side files come through; then every case read is cut
    proxy = DroppingProxy(int(s3_endpoint.rsplit(":", 1)[1]), drop_after=40_000, always=True)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.address)
    monkeypatch.setattr("cfdbench.data.remote.BACKOFF", 0.01)
    monkeypatch.setattr("cfdbench.data.remote.RETRIES", 1)  # each read is also retried inside s3fs
    try:
        remote = open_remote(url)
        with pytest.raises(CfdbenchError) as error:
            remote.case_path(remote.case_ids[0])
    finally:
        proxy.close()
    message = str(error.value)
    assert "\n" not in message and f"{url}/cases/{remote.case_ids[0]}.h5" in message and "nothing was cached" in message
    assert cached_case_entries() == []


def test_a_tampered_object_is_refused_and_nothing_is_cached_or_trained(tiny_dataset, s3, tmp_path):
    url = f"{s3}/cavity-tiny"
    push_dataset(tiny_dataset.path, url)
    fs, path = filesystem(url)
    victim = f"{path}/cases/{tiny_dataset.split('train')[0]}.h5"
    data = bytearray(fs.cat_file(victim))
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    fs.pipe_file(victim, bytes(data))
    result = run_entry_point(
        "train", *SMALL_FNO, "--dataset", url, "--epochs", "1", "--run-dir", str(tmp_path / "run"), cwd=tmp_path
    )
    assert_one_line_error(result, f"{s3}/cavity-tiny/cases/", "does not match the manifest", "nothing was cached")
    assert tiny_dataset.split("train")[0] not in " ".join(cached_case_entries())
    assert not any(".tmp-" in name for name in cached_case_entries())
    assert not (tmp_path / "run").exists()


def test_bad_urls_are_one_line_and_leave_no_cache(tiny_dataset, s3, monkeypatch, tmp_path):
    cases = [(f"{s3}/nothing-here", "has no manifest.json", {}), ("nosuch://bucket/data", "unknown URL scheme 'nosuch'", {})]
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    cases.append(
        (
            f"{s3}/cavity-tiny",
            "cannot reach the server",
            {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_MAX_ATTEMPTS": "1"},
        )
    )
    nowhere = str(tmp_path / "none")
    no_credentials = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None,
                      "AWS_SHARED_CREDENTIALS_FILE": nowhere, "AWS_CONFIG_FILE": nowhere}  # fmt: skip
    cases.append((f"{s3}/cavity-tiny", "no credentials", no_credentials))
    missing = [
        scheme
        for scheme, package in (("gcs", "gcsfs"), ("abfs", "adlfs"), ("hf", "huggingface_hub"))
        if not importlib.util.find_spec(package)
    ]
    if missing:
        cases.append((f"{missing[0]}://bucket/data", f"reading {missing[0]}:// URLs needs", {}))
    for url, fragment, environment in cases:
        with monkeypatch.context() as patch:
            for name, value in environment.items():
                patch.delenv(name, raising=False) if value is None else patch.setenv(name, value)
            result = run_entry_point("data", "info", url, cwd=tmp_path)
        assert_one_line_error(result, url, fragment)
        assert not cache_root().exists() or not any(cache_root().iterdir()), url


def test_a_sharded_zarr_dataset_round_trips_through_s3(s3, tmp_path):
    """A zarr case is a directory: every object under its prefix is fetched, and the whole is verified."""
    from conftest import write_card

    from cfdbench.cards import load_dataset_card
    from cfdbench.data.generate import generate_dataset

    card = load_dataset_card(write_card(tmp_path, subsets={"bc": {"vel_top": [1.0, 2.0, 3.0]}}))
    local = open_dataset(generate_dataset(card, tmp_path / card.name, fmt="zarr", zarr_shards=True).dataset_dir)
    url = f"{s3}/{card.name}"
    push_dataset(local.path, url)
    remote = open_remote(url)
    remote.prefetch(remote.case_ids)
    assert cached_case_entries() == [f"{case_id}.zarr" for case_id in local.case_ids]
    for case_id in local.case_ids:
        assert remote[case_id].equals(local[case_id])
