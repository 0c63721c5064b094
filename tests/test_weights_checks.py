"""The checks of ``embedders.weights`` on tiny files written by the tests: a file that is missing, truncated, corrupt,
not the pinned release or not a checkpoint is refused with a message that says which and how to get the right one,
and one with no known hash loads only loudly. No download: fetching reads a directory, ``memory://`` or a loopback
HTTP server.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch
from torch import nn

from acoustic_env.embedders import weights
from acoustic_env.embedders.weights import Expected, WeightsSource, WeightsSpec
from acoustic_env.errors import WeightsError

SPEC = WeightsSpec(name="tiny", filename="tiny.pt", source="https://example.org/tiny.pt")


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))


def _seeded_state(seed: int = 1) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return _net().state_dict()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _checkpoint_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, dict]:
    """A checkpoint of the tiny network in a cache directory, with its sidecar."""
    path = tmp_path / SPEC.filename
    return path, weights.save_checkpoint(SPEC, _seeded_state(), str(path))


#: The GET requests of the loopback server (``http_root``): their Range header, None for a plain GET.
RANGES: list[str | None] = []


@pytest.fixture()
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a directory (no range requests, as a plain mirror); it notes each GET's Range.
    A name ending in ``.nolength`` is sent without its size (no Content-Length, the end of the body the connection's),
    as dynamic servers and compressing proxies send files."""
    root = tmp_path / "served"
    root.mkdir()
    RANGES.clear()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            RANGES.append(self.headers.get("Range"))
            if self.path.endswith(".nolength"):
                self._without_length(body=True)
            else:
                super().do_GET()

        def do_HEAD(self) -> None:
            if self.path.endswith(".nolength"):
                self._without_length(body=False)
            else:
                super().do_HEAD()

        def _without_length(self, body: bool) -> None:
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            if body:
                self.wfile.write((root / self.path.lstrip("/")).read_bytes())
            self.close_connection = True

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))) as server:
        server.handle_error = lambda *args: None  # clients that stop reading early are not errors
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
        server.shutdown()  # pytest resumes the fixture after a failed test too


# --- messages --------------------------------------------------------------------------------


def test_how_to_get_names_the_command_for_each_kind_of_file() -> None:
    assert SPEC.how_to_get() == ("Download it from https://example.org/tiny.pt with `acoustic-env models fetch tiny` "
                                 "(or `--source <dir-or-url>` for a mirror that holds tiny.pt).")
    converted = replace(SPEC, converted=True)
    assert converted.how_to_get() == (
        "Build it from the official release https://example.org/tiny.pt with `acoustic-env models convert tiny` "
        "(needs pip install \"acoustic-env[convert]\"), or copy an already converted one from a mirror with "
        "`acoustic-env models fetch tiny --source <dir-or-url>`.")
    packaged = replace(SPEC, package="somepkg", extra="some", converted=True)
    assert packaged.how_to_get() == "It comes with the somepkg package: pip install 'acoustic-env[some]'."
    built = replace(SPEC, converted=True, extra="some", build=lambda: {})
    assert built.how_to_get() == ("It is built on this machine on first use, or with `acoustic-env models fetch tiny` "
                                  "(needs pip install 'acoustic-env[some]').")


def test_missing_message_names_the_file_the_cache_and_the_way_out() -> None:
    assert weights.missing_message(SPEC, "/c/tiny.pt") == (
        f"Weights for 'tiny' not found: /c/tiny.pt does not exist. {SPEC.how_to_get()} The cache is set by "
        "$ACOUSTIC_ENV_MODEL_CACHE, `--weights-cache` (extract, annotate, models). For an offline run without "
        "pretrained weights, pass --allow-random-weights.")
    packaged = replace(SPEC, package="somepkg", extra="some")
    assert weights.missing_message(packaged, "somepkg/tiny.pt") == (
        f"Embedder 'tiny' needs an optional extra: somepkg/tiny.pt is not installed. {packaged.how_to_get()}")


def test_a_packaged_graph_runs_at_fp32_and_a_network_at_the_precision_asked() -> None:
    assert weights.runs_at(replace(SPEC, package="somepkg"), "bf16") == "fp32"
    assert weights.runs_at(SPEC, "bf16") == "bf16"


def test_a_licence_is_announced_once_per_process(caplog: pytest.LogCaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "_ANNOUNCED", set())
    licensed = replace(SPEC, licence="CC BY-NC-SA 4.0")
    with caplog.at_level(logging.WARNING, logger=weights.__name__):
        weights.announce_licence(SPEC)
        assert caplog.records == []
        weights.announce_licence(licensed)
        weights.announce_licence(licensed)
    assert [r.getMessage() for r in caplog.records] == [
        "tiny: the weights (https://example.org/tiny.pt) are licensed CC BY-NC-SA 4.0"]
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


# --- where files are ---------------------------------------------------------------------------


def test_the_cache_is_the_argument_else_the_environment_else_the_default(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(weights.CACHE_ENV, "from-env")
    assert weights.resolve_cache_dir("~/mine") == str(tmp_path / "home" / "mine")
    assert weights.resolve_cache_dir() == str(tmp_path / "from-env")
    assert weights.resolve_cache_dir("s3://bucket/~models") == "s3://bucket/~models"
    monkeypatch.delenv(weights.CACHE_ENV)
    assert weights.resolve_cache_dir() == str(tmp_path / "home" / ".cache" / "acoustic-env" / "models")


def test_a_file_is_in_the_cache_or_in_its_installed_package(tmp_path: Path) -> None:
    assert weights.location(SPEC, str(tmp_path)) == str(tmp_path / "tiny.pt")
    assert weights.location(SPEC, "memory://c/models/") == "memory://c/models/tiny.pt"
    assert weights.WeightsSource(cache_dir="memory://c").uri(SPEC) == "memory://c/tiny.pt"
    numpy_init = replace(SPEC, package="numpy", filename="numpy/__init__.py")
    assert weights.location(numpy_init, str(tmp_path)) == np.__file__
    absent = replace(SPEC, package="no-such-distribution-here")
    assert weights.location(absent, str(tmp_path)) == "no-such-distribution-here/tiny.pt"


def test_a_url_cache_given_with_trailing_slashes_names_one_object() -> None:
    # memory:// and object stores keep "a//tiny.pt" and "a/tiny.pt" apart
    assert weights.join_uri("memory://c/models//", "tiny.pt") == "memory://c/models/tiny.pt"
    assert weights.join_uri("s3://bucket/X/", "tiny.pt") == "s3://bucket/X/tiny.pt"


def test_a_sidecar_is_sorted_indented_json_beside_its_file(tmp_path: Path) -> None:
    uri = str(tmp_path / "tiny.pt")
    assert weights.sidecar_uri(uri) == uri + ".json"
    assert weights.read_sidecar(uri) is None
    weights.write_sidecar(uri, {"size": 3, "sha256": "ab"})
    assert (tmp_path / "tiny.pt.json").read_text() == '{\n  "sha256": "ab",\n  "size": 3\n}'
    assert weights.read_sidecar(uri) == {"sha256": "ab", "size": 3}


def test_an_identity_record_says_hash_size_source_and_when_in_utc() -> None:
    record = weights.identity_record("ab", 3, "src", converter="x")
    written = record.pop("written")
    assert record == {"sha256": "ab", "size": 3, "source": "src", "converter": "x"}
    assert len(written) == len("2026-01-01T00:00:00+00:00") and written.endswith("+00:00")


# --- what a file must be -----------------------------------------------------------------------


def test_the_expected_identity_is_the_argument_then_the_registry_then_the_sidecar(tmp_path: Path) -> None:
    uri = str(tmp_path / "tiny.pt")
    md5_only = replace(SPEC, size=7, md5="m")
    assert weights.expected_identity(md5_only, uri) == Expected(
        None, 7, "m", "nowhere (no pinned hash, no sidecar)")
    weights.write_sidecar(uri, {"sha256": "side", "size": 5})
    assert weights.expected_identity(md5_only, uri) == Expected("side", 5, "m", f"its sidecar {uri}.json")
    pinned = replace(md5_only, sha256="pin")
    assert weights.expected_identity(pinned, uri) == Expected("pin", 7, None, "the registry")
    assert weights.expected_identity(pinned, uri, "ABC") == Expected("abc", None, None, "the sha256 argument")
    weights.write_sidecar(uri, {})
    assert weights.expected_identity(md5_only, uri).origin == "nowhere (no pinned hash, no sidecar)"


def test_hashing_streams_every_chunk_and_md5_only_when_asked() -> None:
    data = bytes(range(256)) * (weights._CHUNK // 128 + 3)  # more than two chunks
    assert weights._hash_stream(io.BytesIO(data), True) == (_sha(data), _md5(data), len(data))
    assert weights._hash_stream(io.BytesIO(data), False) == (_sha(data), None, len(data))


def test_a_wrong_size_is_refused_with_both_sizes_and_the_origin() -> None:
    expected = Expected("e" * 64, 10, None, "the registry")
    with pytest.raises(WeightsError) as err:
        weights._check(SPEC, "/c/tiny.pt", expected, "e" * 64, None, 9)
    assert str(err.value) == (
        f"Weights file /c/tiny.pt for 'tiny' is truncated or wrong: expected 10 bytes (from the registry, sha256 "
        f"{'e' * 64}), found 9 bytes. Delete it. {SPEC.how_to_get()}")
    weights._check(SPEC, "/c/tiny.pt", Expected("e" * 64, None, None, "x"), "e" * 64, None, 9)


def test_a_wrong_sha256_is_refused_with_both_hashes(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(WeightsError) as err:
        weights._check(SPEC, "/c/tiny.pt", Expected("a" * 64, 9, None, "the registry"), "b" * 64, None, 9)
    assert str(err.value) == (
        f"Checksum mismatch for 'tiny' weights /c/tiny.pt: expected sha256 {'a' * 64} (from the registry), actual "
        f"sha256 {'b' * 64} (9 bytes). The file is corrupt or not the release https://example.org/tiny.pt. "
        f"Delete it. {SPEC.how_to_get()}")
    with caplog.at_level(logging.WARNING, logger=weights.__name__):
        weights._check(SPEC, "/c/tiny.pt", Expected("a" * 64, 9, None, "the registry"), "a" * 64, None, 9)
    assert caplog.records == []  # a verified file loads quietly


def test_a_wrong_md5_is_refused_and_an_unknown_one_is_not_checked() -> None:
    expected = Expected(None, None, "m" * 32, "published")
    with pytest.raises(WeightsError) as err:
        weights._check(SPEC, "/c/tiny.pt", expected, "s" * 64, "n" * 32, 9)
    assert str(err.value) == (
        f"Checksum mismatch for 'tiny' weights /c/tiny.pt: expected md5 {'m' * 32} (published), actual md5 "
        f"{'n' * 32} (sha256 {'s' * 64}, 9 bytes).")
    weights._check(SPEC, "/c/tiny.pt", expected, "s" * 64, None, 9)
    weights._check(SPEC, "/c/tiny.pt", expected, "s" * 64, "m" * 32, 9)
    weights._check(SPEC, "/c/tiny.pt", Expected(None, None, None, "x"), "s" * 64, "n" * 32, 9)


def test_a_file_with_no_known_hash_is_logged_loudly_with_its_actual_hash(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=weights.__name__):
        weights._check(SPEC, "/c/tiny.pt", Expected(None, None, None, "nowhere"), "s" * 64, None, 9)
    assert [r.getMessage() for r in caplog.records] == [
        f"UNVERIFIED WEIGHTS: no expected sha256 is known for 'tiny' (/c/tiny.pt); loading it as is and recording "
        f"its actual sha256 {'s' * 64} (9 bytes)."]
    assert caplog.records[0].levelno == logging.WARNING


# --- reading -----------------------------------------------------------------------------------


def test_a_checked_file_is_read_whole_with_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    path.write_bytes(b"graph bytes")
    assert weights.read_verified(SPEC, str(path), _sha(b"graph bytes").upper()) == (b"graph bytes",
                                                                                   _sha(b"graph bytes"))
    with pytest.raises(WeightsError, match=f"^Checksum mismatch for 'tiny' weights {path}: "):
        weights.read_verified(SPEC, str(path), "0" * 64)
    with pytest.raises(WeightsError, match="^Weights for 'tiny' not found"):
        weights.read_verified(SPEC, str(tmp_path / "other.pt"))


def test_a_published_md5_is_checked_when_no_sha256_is_known(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    path.write_bytes(b"published bytes")
    assert weights.read_verified(replace(SPEC, md5=_md5(b"published bytes")), str(path))[1] == _sha(b"published bytes")
    with pytest.raises(WeightsError, match="expected md5"):
        weights.read_verified(replace(SPEC, md5="0" * 32), str(path))
    assert weights.status(replace(SPEC, md5="0" * 32), str(tmp_path))["status"] == "bad"


def test_a_truncated_file_is_refused_by_its_size_before_it_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/trunc/tiny.pt", b"short")
    pinned = replace(SPEC, sha256="0" * 64, size=1000)

    def unread(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("a file of the wrong size was read")

    monkeypatch.setattr(type(fs), "cat_file", unread)
    with pytest.raises(WeightsError, match="^Weights file memory://trunc/tiny.pt for 'tiny' .* expected 1000 bytes"):
        weights.read_verified(pinned, "memory://trunc/tiny.pt")
    monkeypatch.setattr(type(fs), "open", unread)
    row = weights.status(pinned, "memory://trunc")
    assert row["status"] == "bad" and row["sha256"] is None
    assert row["reason"].startswith("Weights file memory://trunc/tiny.pt for 'tiny'")
    assert "found 5 bytes" in row["reason"]


def test_a_checkpoint_loads_its_model_state_dict(saved: tuple[Path, dict]) -> None:
    path, record = saved
    state, sha = weights.load_checkpoint(SPEC, str(path))
    assert sha == record["sha256"] == _sha(path.read_bytes())
    expected = _seeded_state()
    assert list(state) == list(expected)
    for key in expected:
        assert torch.equal(state[key], expected[key])


def test_what_is_not_a_model_checkpoint_is_refused(tmp_path: Path) -> None:
    for name, data, message in (
            ("garbage.pt", b"not a checkpoint", "is not a readable PyTorch checkpoint"),
            ("list.pt", _checkpoint_bytes([1, 2]), "has no 'model' state dict"),
            ("nomodel.pt", _checkpoint_bytes({"state": {}}), "has no 'model' state dict"),
            ("flat.pt", _checkpoint_bytes({"model": torch.zeros(2)}), "has no 'model' state dict")):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(WeightsError) as err:
            weights.load_checkpoint(SPEC, str(path), _sha(data))
        assert str(err.value).startswith(f"Weights file {path} for 'tiny' {message}")
        assert f"(sha256 {_sha(data)}): delete it, then fetch or convert it again (acoustic-env models fetch tiny, " \
               "or models convert)" in str(err.value)
        # torch's own words (for a text file, a bare error of a number) named as torch's: its first line alone
        assert (re.search(r" \(torch: \w+Error ", str(err.value)) is not None) == (name == "garbage.pt")
    try:
        torch.load(io.BytesIO(b"not a checkpoint"), weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whichever torch raises
        first = str(exc).strip().splitlines()[0]
        with pytest.raises(WeightsError, match=re.escape(f"(torch: {type(exc).__name__} {first}) (sha256 ")):
            weights.load_checkpoint(SPEC, str(tmp_path / "garbage.pt"), _sha(b"not a checkpoint"))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    data = _checkpoint_bytes({"model": {}, "hook": functools.partial(print, "ran")})
    path = tmp_path / "code.pt"
    path.write_bytes(data)
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        weights.load_checkpoint(SPEC, str(path), _sha(data))


def test_a_checkpoint_is_read_as_data_even_where_the_environment_turns_that_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # changes torch.load's default only
    data = _checkpoint_bytes({"model": {}, "hook": functools.partial(print, "ran")})
    path = tmp_path / "code.pt"
    path.write_bytes(data)
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        weights.load_checkpoint(SPEC, str(path), _sha(data))


def test_a_checkpoint_saved_on_a_gpu_loads_onto_the_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patched:  # the storages say where they were saved: here, a GPU
        patched.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        data = _checkpoint_bytes({"model": {"w": torch.ones(2)}})
    path = tmp_path / "gpu.pt"
    path.write_bytes(data)
    state, _ = weights.load_checkpoint(SPEC, str(path), _sha(data))
    assert state["w"].device.type == "cpu" and torch.equal(state["w"], torch.ones(2))


def test_a_legacy_numpy_array_beside_the_model_is_admitted(tmp_path: Path) -> None:
    data = _checkpoint_bytes({"iteration": np.array([660000], dtype=np.int64), "model": {"w": torch.ones(1)}})
    path = tmp_path / "np.pt"
    path.write_bytes(data)
    state, _ = weights.load_checkpoint(SPEC, str(path), _sha(data))
    assert torch.equal(state["w"], torch.ones(1))


def test_an_npz_loads_its_arrays_and_refuses_pickles(tmp_path: Path) -> None:
    good, pickled = tmp_path / "good.npz", tmp_path / "pickled.npz"
    np.savez(good, mean=np.arange(3.0), pca=np.eye(2))
    arrays, sha = weights.load_npz(SPEC, str(good), _sha(good.read_bytes()))
    assert sha == _sha(good.read_bytes()) and sorted(arrays) == ["mean", "pca"]
    np.testing.assert_array_equal(arrays["mean"], np.arange(3.0))
    np.testing.assert_array_equal(arrays["pca"], np.eye(2))
    weights.write_sidecar(str(good), weights.identity_record("0" * 64, good.stat().st_size, "test"))
    with pytest.raises(WeightsError, match=f"expected sha256 {'0' * 64} \\(from its sidecar"):
        weights.load_npz(SPEC, str(good))
    with pytest.raises(WeightsError, match="expected sha256 1{64} \\(from the sha256 argument"):
        weights.load_npz(SPEC, str(good), "1" * 64)
    np.savez(pickled, objects=np.array([{"a": 1}], dtype=object))
    with pytest.raises(WeightsError) as err:
        weights.load_npz(SPEC, str(pickled), _sha(pickled.read_bytes()))
    assert str(err.value).startswith(f"Weights file {pickled} for 'tiny' is not a readable .npz (sha256 "
                                     f"{_sha(pickled.read_bytes())}): ")


def test_a_saved_checkpoint_is_plain_cpu_tensors_with_its_identity_beside_it(tmp_path: Path) -> None:
    weight = torch.arange(6.0).reshape(2, 3).t().requires_grad_()  # not contiguous, needs grad
    path = tmp_path / "deep" / "er" / "tiny.pt"
    record = weights.save_checkpoint(SPEC, {"w": weight}, str(path), converter="test")
    data = path.read_bytes()
    assert record["sha256"] == _sha(data) and record["size"] == len(data)
    assert record["source"] == SPEC.source and record["converter"] == "test"
    assert weights.read_sidecar(str(path)) == record
    loaded = torch.load(io.BytesIO(data), weights_only=True)
    assert list(loaded) == ["model"] and loaded["model"]["w"].is_contiguous()
    assert not loaded["model"]["w"].requires_grad and torch.equal(loaded["model"]["w"], weight.detach())


def test_a_checkpoint_saves_into_a_new_directory_of_an_fsspec_store() -> None:
    uri = "memory://save-test/a/b/tiny.pt"
    record = weights.save_checkpoint(SPEC, {"w": torch.ones(2)}, uri)
    assert weights.load_checkpoint(SPEC, uri)[1] == record["sha256"]
    assert weights._parent("/tiny.pt") == "/" and weights._parent("/a/b/") == "/a"
    assert weights._parent("/models/X") == "/models"


# --- status ------------------------------------------------------------------------------------


def test_status_tells_missing_present_ok_unverified_and_bad(saved: tuple[Path, dict]) -> None:
    path, record = saved
    cache = str(path.parent)
    base = {"name": "tiny", "file": "tiny.pt", "path": str(path), "source": SPEC.source, "converted": False}
    assert weights.status(SPEC, str(path.parent / "none")) == {
        **base, "path": str(path.parent / "none" / "tiny.pt"), "status": "missing", "sha256": None, "size": None}
    assert weights.status(SPEC, cache, verify=False) == {**base, "status": "present", "sha256": None,
                                                         "size": record["size"]}
    assert weights.status(SPEC, cache) == {**base, "status": "ok", "sha256": record["sha256"],
                                           "size": record["size"]}
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    bad = weights.status(SPEC, cache)
    assert bad["status"] == "bad" and bad["sha256"] == _sha(bytes(data))
    assert bad["reason"].startswith(f"Checksum mismatch for 'tiny' weights {path}: ")
    Path(weights.sidecar_uri(str(path))).unlink()
    assert weights.status(SPEC, cache)["status"] == "unverified"


# --- fetch -------------------------------------------------------------------------------------


def test_fetch_copies_from_a_mirror_and_records_the_identity(saved: tuple[Path, dict], tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    path, record = saved
    cache = tmp_path / "cache"
    cache.mkdir()  # a cache that holds other files already
    with caplog.at_level(logging.INFO, logger=weights.__name__):
        got = weights.fetch(SPEC, str(cache), source=str(path.parent))
    assert [r.getMessage() for r in caplog.records] == [f"fetching {path} -> {cache / 'tiny.pt'}"]
    assert got == {"name": "tiny", "path": str(cache / "tiny.pt"), "sha256": record["sha256"],
                   "size": record["size"], "source": str(path), "already_present": False}
    assert (cache / "tiny.pt").read_bytes() == path.read_bytes() and not (cache / "tiny.pt.part").exists()
    sidecar = weights.read_sidecar(str(cache / "tiny.pt"))
    assert (sidecar["sha256"], sidecar["size"], sidecar["source"]) == (record["sha256"], record["size"], str(path))
    again = weights.fetch(SPEC, str(cache), source="/nowhere")
    assert again == {"name": "tiny", "path": str(cache / "tiny.pt"), "sha256": record["sha256"],
                     "size": record["size"], "source": None, "already_present": True}


def test_fetch_of_a_converted_file_keeps_the_converters_sidecar(saved: tuple[Path, dict], tmp_path: Path) -> None:
    path, record = saved
    converted = replace(SPEC, converted=True)
    with pytest.raises(WeightsError) as err:
        weights.fetch(converted, str(tmp_path / "cache"))
    assert str(err.value) == f"'tiny' (tiny.pt) has no direct download. {converted.how_to_get()}"
    weights.fetch(converted, str(tmp_path / "cache"), source=str(path.parent))
    assert weights.read_sidecar(str(tmp_path / "cache" / "tiny.pt")) == record


def test_fetch_refuses_a_mirror_file_that_is_not_its_sidecars_and_leaves_nothing(saved: tuple[Path, dict],
                                                                                tmp_path: Path) -> None:
    path, _ = saved
    path.write_bytes(path.read_bytes()[::-1])  # same size, other bytes
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match=f"^Checksum mismatch for 'tiny' weights {path}: expected sha256 .* "
                                           f"\\(from its sidecar {path}.json\\)"):
        weights.fetch(SPEC, str(cache), source=str(path.parent))
    assert list(cache.iterdir()) == []


def test_fetch_of_a_pinned_file_writes_no_sidecar(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "tiny.pt").write_bytes(b"release")
    pinned = replace(SPEC, sha256=_sha(b"release"), size=7)
    got = weights.fetch(pinned, str(tmp_path / "cache"), source=str(mirror))
    assert got["sha256"] == _sha(b"release") and not got["already_present"]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["tiny.pt"]
    assert weights.status(pinned, str(tmp_path / "cache"))["status"] == "ok"


def test_fetch_refuses_what_cannot_be_fetched(tmp_path: Path) -> None:
    packaged = replace(SPEC, package="somepkg", extra="some")
    with pytest.raises(WeightsError) as err:
        weights.fetch(packaged, str(tmp_path))
    assert str(err.value) == f"'tiny' is not downloaded. {packaged.how_to_get()}"
    # a package that is installed holds the file: fetch checks it and says it is there, as for a cached file
    import importlib.metadata

    inside = importlib.metadata.distribution("pytest").locate_file("pytest/__init__.py")
    data = Path(inside).read_bytes()
    shipped = replace(SPEC, package="pytest", filename="pytest/__init__.py", sha256=_sha(data), size=len(data))
    assert weights.fetch(shipped, str(tmp_path)) == {"name": "tiny", "path": str(inside), "sha256": _sha(data),
                                                    "size": len(data), "source": None, "already_present": True}
    with pytest.raises(WeightsError, match="^Checksum mismatch for 'tiny' weights .*It comes with the pytest package"):
        weights.fetch(replace(shipped, sha256=_sha(b"another release")), str(tmp_path))  # installed, but not the file
    with pytest.raises(WeightsError) as err:
        weights.fetch(SPEC, str(tmp_path / "cache"), source=str(tmp_path / "mirror"))
    assert str(err.value) == (f"{tmp_path / 'mirror' / 'tiny.pt'} does not exist; cannot fetch 'tiny'. "
                              f"{SPEC.how_to_get()}")


def test_fetch_from_the_official_url_streams_and_checks_the_published_md5(http_root: tuple[str, Path],
                                                                           tmp_path: Path) -> None:
    url, root = http_root
    data = os.urandom(weights._CHUNK + 10)
    (root / "tiny.pt").write_bytes(data)
    official = replace(SPEC, source=url + "tiny.pt", md5=_md5(data))
    got = weights.fetch(official, str(tmp_path / "cache"))
    assert RANGES == [None]  # one plain GET, read as a stream: a server need not serve ranges
    assert got["sha256"] == _sha(data) and got["size"] == len(data) and got["source"] == url + "tiny.pt"
    assert (tmp_path / "cache" / "tiny.pt").read_bytes() == data
    assert weights.read_sidecar(str(tmp_path / "cache" / "tiny.pt"))["source"] == url + "tiny.pt"
    wrong = replace(official, md5="0" * 32)
    with pytest.raises(WeightsError, match="expected md5"):
        weights.fetch(wrong, str(tmp_path / "other"))
    assert list((tmp_path / "other").iterdir()) == []
    with pytest.raises(WeightsError, match=f"expected {len(data) + 1} bytes \\(from the registry, sha256 None\\)"):
        weights.fetch(replace(official, size=len(data) + 1), str(tmp_path / "other"))


def test_a_url_whose_server_does_not_say_the_size_is_checked_after_reading(http_root: tuple[str, Path]) -> None:
    url, root = http_root
    (root / "tiny.pt.nolength").write_bytes(b"release")
    pinned = replace(SPEC, sha256=_sha(b"release"), size=7)
    assert weights.read_verified(pinned, url + "tiny.pt.nolength") == (b"release", _sha(b"release"))
    assert weights.status(replace(pinned, filename="tiny.pt.nolength"), url)["status"] == "ok"
    (root / "tiny.pt.nolength").write_bytes(b"releas")
    with pytest.raises(WeightsError, match="expected 7 bytes .*, found 6 bytes"):
        weights.read_verified(pinned, url + "tiny.pt.nolength")
    # more than the release: the read stops one byte past its size, never reads the rest
    (root / "tiny.pt.nolength").write_bytes(b"release and more")
    with pytest.raises(WeightsError) as err:
        weights.read_verified(pinned, url + "tiny.pt.nolength")
    assert str(err.value) == (f"weights: {url}tiny.pt.nolength grew past the limit of a weights file (7 bytes) while "
                              "it was read ('tiny')")


def test_an_https_source_is_read_as_one_stream_too() -> None:
    assert weights._open_source("https://example.org/tiny.pt").fs.block_size == 0


def test_fetch_from_the_official_url_checks_the_pinned_hash_not_the_md5(http_root: tuple[str, Path],
                                                                         tmp_path: Path) -> None:
    url, root = http_root
    (root / "tiny.pt").write_bytes(b"release")
    official = replace(SPEC, source=url + "tiny.pt", sha256=_sha(b"release"), size=7, md5="0" * 32)
    assert weights.fetch(official, str(tmp_path / "cache"))["sha256"] == _sha(b"release")
    with pytest.raises(WeightsError, match="expected sha256"):
        weights.fetch(replace(official, sha256="0" * 64), str(tmp_path / "other"))


def test_a_failed_copy_is_one_weights_error_that_says_what_to_check(http_root: tuple[str, Path],
                                                                    tmp_path: Path) -> None:
    url, _ = http_root
    official = replace(SPEC, source=url + "absent.pt")
    with pytest.raises(WeightsError) as err:
        weights.fetch(official, str(tmp_path / "cache"))
    message = str(err.value)
    assert message.startswith(f"Could not copy {url}absent.pt: FileNotFoundError: ")
    assert message.endswith("Check the network and credentials, or fetch from a mirror with --source <dir-or-url>.")
    assert list((tmp_path / "cache").iterdir()) == []


# --- WeightsSource -----------------------------------------------------------------------------


def test_a_network_gets_its_checked_checkpoint(saved: tuple[Path, dict]) -> None:
    path, record = saved
    for source in (WeightsSource(cache_dir=str(path.parent)), WeightsSource(weights=str(path), cache_dir="/none"),
                   WeightsSource(cache_dir=str(path.parent), allow_random_weights=True)):
        network, weights_id = source.network(SPEC, _net)
        assert weights_id == record["sha256"]
        for key, value in _seeded_state().items():
            assert torch.equal(network.state_dict()[key], value)
    with pytest.raises(WeightsError, match="Checksum mismatch"):
        WeightsSource(cache_dir=str(path.parent), sha256="0" * 64).network(SPEC, _net)


def test_without_a_checkpoint_random_weights_only_when_allowed_and_always_the_same(tmp_path: Path,
                                                                                   caplog: pytest.LogCaptureFixture
                                                                                   ) -> None:
    with pytest.raises(WeightsError, match="not found"):
        WeightsSource(cache_dir=str(tmp_path)).network(SPEC, _net)
    allowed = WeightsSource(cache_dir=str(tmp_path), allow_random_weights=True)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    with caplog.at_level(logging.WARNING, logger=weights.__name__):
        first, weights_id = allowed.network(SPEC, _net)
    assert weights_id == "random" and torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(weights.RANDOM_SEED)
    reference = _net()
    for key, value in reference.state_dict().items():
        assert torch.equal(first.state_dict()[key], value)
    assert [r.getMessage() for r in caplog.records] == [
        f"No weights for 'tiny' at {tmp_path / 'tiny.pt'}: using RANDOM weights (--allow-random-weights); "
        "outputs carry no pretrained meaning."]


def test_a_checkpoint_of_another_network_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    record = weights.save_checkpoint(SPEC, {**_seeded_state(), "extra": torch.ones(1)}, str(path))
    with pytest.raises(WeightsError) as err:
        WeightsSource(weights=str(path)).network(SPEC, _net)
    assert str(err.value).startswith(f"{path} (sha256 {record['sha256']}) does not fit the tiny network: ")
    assert "extra" in str(err.value)


def test_a_model_file_is_read_checked_and_never_random(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    path.write_bytes(b"graph")
    assert WeightsSource(cache_dir=str(tmp_path)).file(SPEC) == (b"graph", _sha(b"graph"))
    assert WeightsSource(weights=str(path), cache_dir="/none", sha256=_sha(b"graph")).file(SPEC)[0] == b"graph"
    with pytest.raises(WeightsError, match="Checksum mismatch"):
        WeightsSource(weights=str(path), sha256="0" * 64).file(SPEC)
    with pytest.raises(WeightsError, match="not found"):
        WeightsSource(cache_dir=str(tmp_path / "none"), allow_random_weights=True).file(SPEC)


def test_a_weights_file_that_is_a_fifo_or_over_the_limit_is_refused_unopened(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A FIFO (or a link to /dev/zero) where the checkpoint should be: opened, the load would wait or read for
    ever. One line naming the file, its spec and why, as for any other bad weights file."""
    path = tmp_path / "tiny.pt"
    os.mkfifo(path)
    with pytest.raises(WeightsError) as err:
        weights.read_verified(SPEC, str(path), "0" * 64)
    assert str(err.value) == f"weights: {path} is not a regular file (a FIFO, a device or a socket); give a file ('tiny')"
    path.unlink()
    path.write_bytes(b"x" * 2000)
    monkeypatch.setattr(weights, "MAX_WEIGHTS_BYTES", 1024)
    with pytest.raises(WeightsError) as err:
        weights.read_verified(SPEC, str(path), "0" * 64)
    assert str(err.value) == (f"weights: {path} is 2.0 KiB (2,000 bytes), over the limit of a weights file (1 KiB) "
                              "('tiny')")


def test_a_file_longer_than_its_pinned_size_is_refused_by_its_size_with_both_sizes(tmp_path: Path) -> None:
    """A wrong file bigger than the release (another model's checkpoint): refused by its size before it is read,
    with the size expected and the size found, not as a read cut short."""
    path = tmp_path / "tiny.pt"
    path.write_bytes(b"longer bytes")
    with pytest.raises(WeightsError) as err:
        weights.read_verified(replace(SPEC, sha256="0" * 64, size=5), str(path))
    assert str(err.value).startswith(f"Weights file {path} for 'tiny' is truncated or wrong: expected 5 bytes (from ")
    assert "found 12 bytes. Delete it." in str(err.value)


def test_a_file_built_here_is_built_by_fetch_unless_a_mirror_is_named(saved: tuple[Path, dict], tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """BirdNET's ONNX copy is made on this machine from the installed package: ``models fetch`` builds it (no
    download exists), and copies it only from a mirror the user names (into this machine's cache, whatever cache
    is named)."""
    path, record = saved
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    built = {"name": "tiny", "path": "built here"}
    spec = replace(SPEC, converted=True, build=lambda: built)
    assert weights.fetch(spec, str(tmp_path / "cache")) is built
    assert not (tmp_path / "cache" / "tiny.pt").exists()
    got = weights.fetch(spec, str(tmp_path / "cache"), source=str(path.parent))
    assert (got["source"], got["sha256"]) == (str(path), record["sha256"])


def test_a_fifo_in_the_cache_is_listed_bad_with_the_readers_line_and_never_opened(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``models list`` over a cache where a FIFO holds a weights file's name: a row like any bad file's, its reason
    the reader's one line, no hash or size made up, and the listing does not hang on it."""
    os.mkfifo(tmp_path / SPEC.filename)
    assert weights.status(SPEC, str(tmp_path)) == {
        "name": "tiny", "file": "tiny.pt", "path": str(tmp_path / "tiny.pt"), "source": SPEC.source,
        "converted": False, "status": "bad", "sha256": None, "size": None,
        "reason": f"weights: {tmp_path / 'tiny.pt'} is not a regular file (a FIFO, a device or a socket); give a file"}
    (tmp_path / SPEC.filename).unlink()
    (tmp_path / SPEC.filename).write_bytes(b"x" * 2000)  # over the limit: never hashed
    monkeypatch.setattr(weights, "MAX_WEIGHTS_BYTES", 1024)
    assert weights.status(SPEC, str(tmp_path))["reason"] == (
        f"weights: {tmp_path / 'tiny.pt'} is 2.0 KiB (2,000 bytes), over the limit of a weights file (1 KiB)")
