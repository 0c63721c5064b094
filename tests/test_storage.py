"""acoustic_env.storage directly: secret redaction, URI arithmetic, read limits, transport failures, atomic writes and
the removal of a dead writer's temporaries. Fast (no network, no Ray): the tests ``make mutate`` runs on the module.

Object stores are stood in for by fsspec's ``memory://`` (not local, like s3://) or by a fake filesystem where only
a listing cache or an error matters; S3 filesystems are built (their settings read) but never reach a server.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from s3fs import S3FileSystem

from acoustic_env import storage
from acoustic_env.errors import DamagedFileError, MissingExtraError
from acoustic_env.storage import (delete, filesystem, is_local, join, list_parts, move, nesting, read_filesystem,
                                  read_json, read_options, read_part, read_parts, redact, redact_all,
                                  remove_stale_temporaries, require_backend, s3_retries, same_file,
                                  strip_protocol_keep, transport_failure, within_roots, write_bytes, write_json,
                                  write_parquet)

#: The documented secret query parameters, written out: a name dropped from (or misspelt in) the module's list fails.
SECRETS = ("token", "access_token", "id_token", "auth", "key", "api_key", "apikey", "password", "secret", "sig",
           "signature", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "X-Goog-Signature",
           "X-Goog-Credential", "client_secret")


@pytest.fixture
def memory() -> fsspec.AbstractFileSystem:
    """fsspec's in-memory store, emptied before and after: a remote store as far as this module can tell."""
    fs = fsspec.filesystem("memory")
    fs.store.clear()
    fs.pseudo_dirs[:] = [""]
    yield fs
    fs.store.clear()
    fs.pseudo_dirs[:] = [""]


@pytest.fixture(autouse=True)
def _fresh_s3_instances(monkeypatch):
    """No S3 filesystem cached by an earlier call (fsspec reuses instances), and no retry settings from outside."""
    S3FileSystem.clear_instance_cache()
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)


# --- secrets in URLs ---

@pytest.mark.parametrize("name", SECRETS)
def test_each_secret_query_parameter_is_redacted_first_or_later_in_the_query(name):
    assert redact(f"https://h/a.wav?{name}=s3cr3t") == f"https://h/a.wav?{name}=***"
    assert redact(f"https://h/a.wav?x=1&{name}=s3cr3t&y=2") == f"https://h/a.wav?x=1&{name}=***&y=2"
    assert redact(f"https://h/a.wav?x=1;{name.upper()}=s3cr3t") == f"https://h/a.wav?x=1;{name.upper()}=***"


def test_user_info_is_redacted_whatever_the_scheme_and_an_at_in_the_password():
    assert redact("https://alice:pa55@host/a.wav") == "https://***@host/a.wav"
    assert redact("see s3://AKIA:k3y@bucket/k and HTTPS://bob@H/x") == "see s3://***@bucket/k and HTTPS://***@H/x"
    assert redact("https://u:p@ss@host/x?y=1") == "https://***@host/x?y=1"
    # an address in the path or after the URL is no user-info
    assert redact("https://host/a@b.wav mail x@y.org") == "https://host/a@b.wav mail x@y.org"


def test_a_fragments_secret_is_redacted_like_a_querys():
    """OAuth's implicit flow returns the token in the fragment: it leaked before ``#`` opened a parameter too."""
    assert (redact("https://h/cb#access_token=abc&token_type=bearer")
            == "https://h/cb#access_token=***&token_type=bearer")


def test_parameters_that_only_contain_a_secrets_name_are_kept():
    text = "https://h/a?monkey=1&keyboard=2&tokens=3&x=key&#key"
    assert redact(text) == text


def test_the_value_ends_at_the_next_parameter_fragment_quote_or_space():
    assert redact("https://h/a?token=t0k#frag") == "https://h/a?token=***#frag"
    assert redact("url='https://h/a?sig=s1g' and \"https://h/b?key=k3y\"") == (
        "url='https://h/a?sig=***' and \"https://h/b?key=***\"")
    assert redact("https://h/a?token=t0k\tnext") == "https://h/a?token=***\tnext"
    assert redact("https://h/a?token=&key=k3y") == "https://h/a?token=***&key=***"


def test_the_sentences_punctuation_after_a_secret_is_kept_and_the_values_own_is_redacted():
    assert redact("cannot read https://h/a?token=t0k: not found") == "cannot read https://h/a?token=***: not found"
    assert redact("(https://h/a?sig=s1g), then h://b?key=k3y.") == "(https://h/a?sig=***), then h://b?key=***."
    assert redact("https://h/a?key=abc.,);") == "https://h/a?key=***.,);"
    assert redact("https://h/a?key=abc;&x=1") == "https://h/a?key=***;&x=1"
    assert redact("https://h/a?token=a.b:c)d;e,f t") == "https://h/a?token=*** t"


def test_extra_parameters_are_redacted_as_literal_names():
    assert redact("https://h/a?session=s1&x=2", ("session",)) == "https://h/a?session=***&x=2"
    assert redact("https://h/a?x.y=s1&xzy=2", ("x.y",)) == "https://h/a?x.y=***&xzy=2"
    assert redact("https://h/a?session=s1") == "https://h/a?session=s1"


def test_redact_all_cleans_every_string_of_nested_data_keys_included():
    record = {"uri": "https://u:p@h/a?session=s1", "n": 3, "none": None, "ok": True,
              "inputs": ("s3://b/k?token=t", {"deep": ["https://h?sig=s", 2.5]}),
              "https://h/a?session=t": "by uri", 7: ["https://h/b?session=s2"]}
    assert redact_all(record, ["session"]) == {
        "uri": "https://***@h/a?session=***", "n": 3, "none": None, "ok": True,
        "inputs": ["s3://b/k?token=***", {"deep": ["https://h?sig=***", 2.5]}],
        "https://h/a?session=***": "by uri", 7: ["https://h/b?session=***"]}
    assert redact_all("https://h?session=s", iter(["session"])) == "https://h?session=***"
    assert redact_all(5) == 5
    # a set (written by json.dumps(default=str) as its repr, secrets and all) comes back as a sorted list
    assert redact_all({"uris": {"https://h?token=b", "https://h?token=a"}}) == {
        "uris": ["https://h?token=***", "https://h?token=***"]}
    names = [f"clip-{i:02d}" for i in range(40)]
    assert redact_all(frozenset(reversed(names))) == names  # in order, whatever the set's own order
    assert redact_all({"x", 3}) == [3, "x"]  # of mixed types: by their text


# --- URIs ---

def test_is_local_means_no_scheme_or_file():
    assert is_local("/data/a.wav") and is_local("rel/a.wav") and is_local("file:///data/a.wav")
    assert not is_local("s3://b/a.wav") and not is_local("memory://x") and not is_local("afile://x")


def test_join_strips_the_bases_trailing_slashes_only():
    assert join("s3://b/out/", "features", "p.parquet") == "s3://b/out/features/p.parquet"
    assert join("/data/BOX//", "x") == "/data/BOX/x"
    assert join("XX", "x") == "XX/x"
    assert join("/", "labels") == join("//", "labels") == "/labels" and join("", "x") == "x"  # the root stays the root
    assert join("file:///", "labels") == "file:///labels" and join("file:///data/", "x") == "file:///data/x"  # a scheme's


def test_a_listed_path_gets_the_references_protocol_back():
    assert strip_protocol_keep("s3://b/out", "b/out/p.parquet") == "s3://b/out/p.parquet"
    assert strip_protocol_keep("s3://mirror/http://site", "mirror/http://site/a") == "mirror/http://site/a"
    assert strip_protocol_keep("https://h/x", "https://h/x/a.wav") == "https://h/x/a.wav"
    assert strip_protocol_keep("file:///data", "/data/a") == "/data/a"
    assert strip_protocol_keep("/data", "/data/a") == "/data/a"


def test_places_nest_by_their_normalised_paths(tmp_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "data2").mkdir()
    (tmp_path / "link").symlink_to(root / "sub")
    assert within_roots(str(root), [str(root)]) and within_roots(str(root / "sub" / "a.wav"), [str(root)])
    assert within_roots(f"file://{root}/sub", ["/elsewhere", str(root)])
    assert within_roots(str(tmp_path / "link" / "a.wav"), [str(root)])  # through the link
    assert not within_roots(str(tmp_path / "data2" / "a.wav"), [str(root)])  # a sibling sharing the prefix
    assert not within_roots(str(root / ".." / "data2"), [str(root)])
    assert not within_roots(str(root), [])
    assert within_roots("s3://b/t/./x/../p.parquet", ["s3://b/t/"])
    assert within_roots(str(root), ["/"]) and within_roots("s3://b/t", ["s3://b"])  # the top is a root too
    assert not within_roots("s3://b/t2/p.parquet", ["s3://b/t"]) and not within_roots("gs://b/t/p", ["s3://b/t"])


def test_remote_places_compare_scheme_host_port_and_path():
    assert nesting("S3://bucket/t/x", "s3://bucket/t") == "inside"
    assert nesting("s3://bucket/t", "s3://bucket/t/x") == "contains"
    assert nesting("https://Host/x", "https://host/x/") == "is"
    assert nesting("https://h:8080/x", "https://h/x") is None and nesting("https://h:8080/x/y", "https://h:8080/x")
    assert nesting("s3://a/t/x", "s3://b/t") is None
    assert nesting("s3://b/BOX/y", "s3://b/BOX") == "inside" and nesting("s3://b/BO/y", "s3://b/BOX") is None
    assert nesting("s3://b/../../t", "s3://b/t") == "is"  # no path climbs above the bucket
    assert nesting("s3://b/t", "/b/t") is None


def test_local_places_are_one_file_by_inode_or_resolved_path(tmp_path):
    a = tmp_path / "a.parquet"
    a.write_bytes(b"x")
    os.link(a, tmp_path / "hard.parquet")
    assert same_file(str(a), str(tmp_path / "hard.parquet")) and nesting(str(a), str(tmp_path / "hard.parquet"))
    assert same_file(f"file://{a}", str(tmp_path / "sub" / ".." / "a.parquet"))
    assert same_file(str(tmp_path / "new"), f"file://{tmp_path}/./new")  # neither there yet
    assert not same_file(str(a), str(tmp_path / "new"))
    assert nesting(str(tmp_path / "new" / "x"), str(tmp_path)) == "inside"
    assert nesting(str(tmp_path), str(a)) == "contains"
    assert not same_file(str(a), f"s3:/{a}")
    # a hard link is the same file only by its inode, whichever side says file://
    hard = str(tmp_path / "hard.parquet")
    assert same_file(f"file://{a}", hard) and same_file(hard, f"file://{a}")


# --- backends and limits ---

@pytest.mark.parametrize("uri, extra, package", [
    ("gs://b/a.wav", "gcs", "gcsfs"), ("GCS://b/a.wav", "gcs", "gcsfs"), ("az://c/a.wav", "azure", "adlfs"),
    ("abfs://c/a.wav", "azure", "adlfs"), ("abfss://c/a.wav", "azure", "adlfs")])
def test_a_store_without_its_package_names_the_extra(uri, extra, package, monkeypatch):
    def missing(protocol: str) -> type:
        raise ImportError(f"no {protocol}")

    monkeypatch.setattr(fsspec, "get_filesystem_class", missing)
    protocol = uri.split(":")[0].lower()
    said = f"{protocol}:// paths need {package}, which is not installed: pip install 'acoustic-env[{extra}]'"
    for call in (lambda: require_backend(uri), lambda: filesystem(uri), lambda: read_filesystem(uri, 5)):
        with pytest.raises(MissingExtraError) as info:
            call()
        assert str(info.value) == said and info.value.__cause__ is None


def test_a_store_whose_package_is_there_or_needs_none_passes(monkeypatch):
    asked = []
    monkeypatch.setattr(fsspec, "get_filesystem_class", asked.append)
    for uri in ("gs://b/a.wav", "s3://b/a.wav", "/data/a.wav", "gsx://b", "gs", "gs://mirror/http://site/a.wav"):
        require_backend(uri)  # "gs": a local file of that name
    assert asked == ["gs", "gs"]


def test_s3_retries_are_standard_mode_unless_the_environment_says_otherwise(monkeypatch):
    assert s3_retries(4) == {"mode": "standard", "total_max_attempts": 4}
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "9")
    assert s3_retries(4) == {"mode": "adaptive", "total_max_attempts": 9}
    for unusable in ("", "x", "-1"):
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", unusable)
        assert s3_retries(4)["total_max_attempts"] == 4


def test_an_s3_write_tries_five_times_in_botocore_and_once_in_s3fs():
    for uri in ("s3://bucket/k.parquet", "s3a://bucket/k.parquet"):
        S3FileSystem.clear_instance_cache()
        fs, path = filesystem(uri)
        assert isinstance(fs, S3FileSystem) and path == "bucket/k.parquet"
        assert fs.config_kwargs == {"retries": {"mode": "standard", "total_max_attempts": 5}} and fs.retries == 1


def test_an_s3_read_is_bounded_and_tries_three_times():
    fs, path = read_filesystem("s3://bucket/k.wav", 7.5)
    assert path == "bucket/k.wav" and fs.retries == 1
    assert fs.config_kwargs == {"connect_timeout": 7.5, "read_timeout": 7.5,
                                "retries": {"mode": "standard", "total_max_attempts": 3}}


def test_read_options_bound_every_wait_per_protocol():
    for uri in ("http://h/a.wav", "HTTPS://h/a.wav"):
        timeout = read_options(uri, 4.0)["client_kwargs"]["timeout"]
        assert timeout == aiohttp.ClientTimeout(total=4.0, sock_connect=4.0, sock_read=4.0)
    for uri in ("s3://b/a.wav", "S3A://b/a.wav"):
        assert read_options(uri, 4.0) == {"config_kwargs": {"connect_timeout": 4.0, "read_timeout": 4.0,
                                                            "retries": {"mode": "standard", "total_max_attempts": 3}}}
    assert read_options("/data/s3", 4.0) == {} and read_options("memory://x", 4.0) == {}
    assert read_options("s3", 4.0) == {} and read_options("https", 4.0) == {}  # local files of those names
    assert "config_kwargs" in read_options("s3://mirror/http://site/a.wav", 4.0)


def test_a_read_elsewhere_than_s3_keeps_its_filesystems_own_retries():
    fs, path = read_filesystem("https://h/x.wav?a=1", 6)
    assert path == "https://h/x.wav?a=1" and "retries" not in vars(fs)
    assert fs.client_kwargs["timeout"].sock_read == 6
    fs, path = read_filesystem("memory://x/y", 6)
    assert path == "/x/y" and "retries" not in vars(fs)
    fs, path = read_filesystem("s3", 6)  # a local file of that name
    assert path.endswith("/s3") and "retries" not in vars(fs)


def test_an_s3_key_holding_another_url_is_still_on_s3():
    fs, path = read_filesystem("s3://mirror/http://site/a.wav", 6)
    assert path == "mirror/http://site/a.wav" and fs.retries == 1


# --- transport failures ---

class _HTTPError(Exception):
    """aiohttp's ClientResponseError as far as transport_failure reads it."""

    def __init__(self, status: Any, message: str | None = None):
        super().__init__(f"{status}")
        self.status = status
        if message is not None:
            self.message = message


class ServerTimeoutError(Exception):
    """A timeout that is no TimeoutError (aiohttp's is an OSError whose name says it)."""


def _wrapped(cause: BaseException, outer: BaseException) -> BaseException:
    """``outer`` raised from ``cause``, as fsspec wraps a transport's error."""
    outer.__cause__ = cause
    return outer


def test_a_timeout_anywhere_in_the_chain_is_a_read_timeout():
    said = ("read_timeout", "no answer within the read timeout")
    assert transport_failure(TimeoutError()) == said
    assert transport_failure(_wrapped(ServerTimeoutError(), FileNotFoundError("x"))) == said
    try:
        try:
            raise TimeoutError
        except TimeoutError:
            raise FileNotFoundError("x")  # noqa: B904 - the implicit context is what is checked
    except FileNotFoundError as exc:
        assert transport_failure(exc) == said


def test_an_http_status_decides_the_type():
    assert transport_failure(_wrapped(_HTTPError(404), FileNotFoundError("x"))) == ("missing_file",
                                                                                    "not found (HTTP 404)")
    for status in (401, 403):
        assert transport_failure(_HTTPError(status)) == ("permission_denied", f"access denied (HTTP {status})")
    assert transport_failure(_HTTPError(500, "Internal Server Error")) == ("read_failed",
                                                                         "HTTP 500 Internal Server Error")
    assert transport_failure(_HTTPError(502)) == ("read_failed", "HTTP 502")
    assert transport_failure(_HTTPError("404")) == ("read_failed", "_HTTPError: 404")  # not an HTTP status


def test_a_network_error_under_not_found_is_a_read_failure():
    refused = _wrapped(ConnectionRefusedError(111, "Connection refused"), FileNotFoundError("x"))
    assert transport_failure(refused) == ("read_failed", "ConnectionRefusedError: [Errno 111] Connection refused")
    denied = _wrapped(ConnectionResetError("reset"), PermissionError("x"))
    assert transport_failure(denied) == ("read_failed", "ConnectionResetError: reset")
    deeper = _wrapped(FileNotFoundError(errno.ENOENT, "gone"), FileNotFoundError("s3://b/k"))
    assert transport_failure(deeper) == ("missing_file", "not found (s3://b/k)")


def test_not_found_and_permission_denied_as_the_transport_says():
    assert transport_failure(FileNotFoundError(errno.ENOENT, "No such file", "/x")) == ("missing_file", "not found")
    assert transport_failure(FileNotFoundError("s3://b/k\nmore")) == ("missing_file", "not found (s3://b/k)")
    assert transport_failure(PermissionError(errno.EACCES, "no")) == ("permission_denied", "permission denied")


def test_any_other_error_is_its_type_and_first_line():
    assert transport_failure(ValueError("\n  bad header\nsecond")) == ("read_failed", "ValueError: bad header")
    assert transport_failure(ValueError("")) == ("read_failed", "ValueError: no details")
    assert transport_failure(FileNotFoundError("")) == ("missing_file", "not found (no details)")


def test_a_cyclic_chain_ends():
    a, b = ValueError("a"), KeyError("b")
    a.__cause__, b.__cause__ = b, a
    assert transport_failure(a) == ("read_failed", "ValueError: a")


# --- writes ---

def test_write_parquet_is_zstd_and_reads_back(tmp_path):
    uri = str(tmp_path / "deep" / "er" / "p.parquet")
    write_parquet(pa.table({"x": [1, 2]}), uri)
    assert pq.ParquetFile(uri).metadata.row_group(0).column(0).compression == "ZSTD"
    assert read_part(uri).to_pylist() == [{"x": 1}, {"x": 2}]
    assert os.listdir(tmp_path / "deep" / "er") == ["p.parquet"]


def test_a_local_write_renames_a_temporary_beside_the_file_and_leaves_none(tmp_path, monkeypatch):
    """Beside it: a rename within one folder is atomic (one filesystem), and a dead writer's is found there."""
    renames = []

    def replace(src: str, dst: str) -> None:
        renames.append((src, dst))
        os.rename(src, dst)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(storage.os, "replace", replace)
    uri = str(tmp_path / "out" / "a.json")
    write_bytes(b"one", uri)
    write_bytes(b"two", uri)
    assert Path(uri).read_bytes() == b"two" and os.listdir(tmp_path / "out") == ["a.json"]
    assert [os.path.dirname(src) for src, _ in renames] == [str(tmp_path / "out")] * 2
    assert all(os.path.basename(src).startswith(".tmp-") and dst == uri for src, dst in renames)


def test_a_failed_local_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    uri = str(tmp_path / "a.json")
    write_bytes(b"old", uri)
    with pytest.raises(TypeError):
        write_bytes("not bytes", uri)  # type: ignore[arg-type]
    assert Path(uri).read_bytes() == b"old" and os.listdir(tmp_path) == ["a.json"]
    (tmp_path / "dir").mkdir()
    with pytest.raises(OSError):
        write_bytes(b"x", str(tmp_path / "dir"))  # the rename fails: a folder is there
    assert sorted(os.listdir(tmp_path)) == ["a.json", "dir"]


def test_a_remote_write_is_one_put_and_makes_no_local_folder(memory, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_bytes(b"data", "memory://out/sub/a.bin")
    assert memory.cat_file("/out/sub/a.bin") == b"data" and memory.find("/") == ["/out/sub/a.bin"]
    assert os.listdir(tmp_path) == [] and not Path("/out/sub").exists()


def test_json_is_written_indented_sorted_and_with_anything_as_text(tmp_path):
    uri = str(tmp_path / "r.json")
    write_json({"b": 1, "a": Path("/x")}, uri)
    assert Path(uri).read_text() == '{\n  "a": "/x",\n  "b": 1\n}'
    assert read_json(uri) == {"a": "/x", "b": 1}


def test_move_makes_the_local_folder_and_delete_removes(tmp_path, memory):
    src = tmp_path / "a.bin"
    src.write_bytes(b"x")
    move(str(src), str(tmp_path / "new" / "deeper" / "a.bin"))
    assert not src.exists() and (tmp_path / "new" / "deeper" / "a.bin").read_bytes() == b"x"
    delete(str(tmp_path / "new" / "deeper" / "a.bin"))
    assert os.listdir(tmp_path / "new" / "deeper") == []
    memory.pipe_file("/q/a", b"y")
    (tmp_path / "b.bin").write_bytes(b"z")
    move(str(tmp_path / "b.bin"), str(tmp_path / "new" / "deeper" / "b.bin"))  # into a folder that is there
    assert os.listdir(tmp_path / "new" / "deeper") == ["b.bin"]
    move("memory://q/a", "memory://r/b")
    assert memory.find("/") == ["/r/b"]


# --- reads ---

def test_parts_are_the_sorted_visible_parquet_files(tmp_path, memory):
    for name in ("p-2.parquet", "p-1.parquet", ".p-0.parquet", ".tmp-1@h-x", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert list_parts(str(tmp_path)) == [str(tmp_path / "p-1.parquet"), str(tmp_path / "p-2.parquet")]
    assert list_parts(str(tmp_path / "missing")) == []
    memory.pipe_file("/o/b.parquet", b"")
    memory.pipe_file("/o/a.parquet", b"")
    assert list_parts("memory://o") == ["memory:///o/a.parquet", "memory:///o/b.parquet"]


def test_parts_are_listed_afresh_not_from_a_cached_listing(monkeypatch):
    class Cached:
        """A store that answers a listing from its cache until told to forget the folder."""

        def __init__(self):
            self.cache = {"b/o": ["b/o/old.parquet"]}

        def invalidate_cache(self, path: str) -> None:
            self.cache.pop(path, None)

        def ls(self, path: str, detail: bool) -> list[str]:
            assert detail is False
            return self.cache.get(path, ["b/o/old.parquet", "b/o/new.parquet"])

    monkeypatch.setattr(storage, "filesystem", lambda uri: (Cached(), "b/o"))
    assert list_parts("s3://b/o") == ["s3://b/o/new.parquet", "s3://b/o/old.parquet"]


def test_read_parts_concatenates_with_promotion_and_none_without_parts(tmp_path):
    assert read_parts(str(tmp_path)) is None
    write_parquet(pa.table({"x": [1], "y": ["a"]}), str(tmp_path / "p-1.parquet"))
    write_parquet(pa.table({"x": pa.array([None], pa.null()), "y": ["b"]}), str(tmp_path / "p-2.parquet"))
    assert read_parts(str(tmp_path)).to_pylist() == [{"x": 1, "y": "a"}, {"x": None, "y": "b"}]
    assert read_parts(str(tmp_path), ["y"]).to_pylist() == [{"y": "a"}, {"y": "b"}]


def test_a_damaged_part_is_named_and_a_transport_error_is_not_taken_for_one(tmp_path, monkeypatch):
    good = tmp_path / "good.parquet"
    write_parquet(pa.table({"x": list(range(100))}), str(good))
    data = good.read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])  # pyarrow: ArrowInvalid
    (tmp_path / "bad.parquet").write_bytes(data[:4] + b"\0" * 40 + data[44:])  # pyarrow: a bare OSError
    for name in ("cut", "bad"):
        uri = str(tmp_path / f"{name}.parquet")
        with pytest.raises(DamagedFileError, match=f"^{re.escape(uri)}: not a readable Parquet file \\(") as info:
            read_part(uri)
        assert info.value.__cause__ is None
    assert read_part(str(good), ["x"]).num_rows == 100
    with pytest.raises(FileNotFoundError):
        read_part(str(tmp_path / "missing.parquet"))

    for error in (OSError(errno.EIO, "I/O error"), ConnectionResetError("reset")):
        class Failing:
            def open(self, path: str, mode: str) -> Any:
                raise error

        monkeypatch.setattr(storage, "filesystem", lambda uri: (Failing(), uri))
        with pytest.raises(OSError) as info:
            read_part("s3://b/p.parquet")
        assert info.value is error


# --- temporaries of dead writers ---

def test_a_temporary_names_its_writer_and_the_writer_is_judged_by_it(monkeypatch):
    name = storage._temporary_name()
    host = socket.gethostname()
    assert re.fullmatch(rf"\.tmp-{os.getpid()}@{re.escape(host)}-[0-9a-f]{{32}}", name), name
    assert storage._writer_alive(name) is True
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert storage._writer_alive(f".tmp-{dead}@{host}-ab") is False
    assert storage._writer_alive(f".tmp-{os.getpid()}@elsewhere-ab") is None
    assert storage._writer_alive(f".tmp-x{os.getpid()}@{host}-ab") is None
    assert storage._writer_alive(".tmp-0123456789abcdef") is None
    monkeypatch.setattr(socket, "gethostname", lambda: "node-7")  # a host name with a dash
    assert storage._writer_alive(f".tmp-{os.getpid()}@node-7-ab") is True

    def denied(pid: int, signal: int) -> None:
        raise PermissionError

    monkeypatch.setattr(os, "kill", denied)  # another user's process
    assert storage._writer_alive(f".tmp-{os.getpid()}@node-7-ab") is True


def test_asking_whether_a_writer_lives_sends_it_no_signal(monkeypatch):
    """Signal 0 only checks that the process exists; any other would hang up, stop or kill a live writer."""
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    sent: list[tuple[int, int]] = []
    kill = os.kill

    def recorded(pid: int, signal: int) -> None:
        sent.append((pid, signal))
        kill(pid, signal)

    monkeypatch.setattr(os, "kill", recorded)
    try:
        assert storage._writer_alive(f".tmp-{writer.pid}@{socket.gethostname()}-ab") is True
        assert sent == [(writer.pid, 0)]
        assert writer.poll() is None
    finally:
        writer.kill()
        writer.wait()


def _aged(path: Path, mtime: float, data: bytes = b"half") -> Path:
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def test_only_old_temporaries_no_writer_can_rename_are_removed(tmp_path):
    before = time.time()
    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    removed = {
        "dead": _aged(tmp_path / f".tmp-{dead}@{host}-aa", before - 1),
        "stale_unknown": _aged(tmp_path / ".tmp-0123", before - 100.5),
        "stale_live": _aged(tmp_path / f".tmp-{os.getpid()}@{host}-bb", before - 101),
    }
    kept = {
        "live": _aged(tmp_path / f".tmp-{os.getpid()}@{host}-cc", before - 50),
        "unknown_at_the_limit": _aged(tmp_path / ".tmp-4567", before - 100),
        "dead_but_as_new_as_the_run": _aged(tmp_path / f".tmp-{dead}@{host}-dd", before),
        "not_a_temporary": _aged(tmp_path / "p-1.parquet", before - 1000),
    }
    (tmp_path / ".tmp-folder").mkdir()
    os.utime(tmp_path / ".tmp-folder", (before - 1000, before - 1000))
    got = remove_stale_temporaries(str(tmp_path), before, stale_s=100)
    assert sorted(got) == sorted(str(p) for p in removed.values())
    assert sorted(os.listdir(tmp_path)) == sorted([p.name for p in kept.values()] + [".tmp-folder"])


def test_temporaries_are_stale_after_ten_minutes_by_default(tmp_path):
    before = time.time()
    old = _aged(tmp_path / ".tmp-old", before - 600.5)
    _aged(tmp_path / ".tmp-young", before - 600)
    assert remove_stale_temporaries(f"file://{tmp_path}", before) == [str(old)]
    assert os.listdir(tmp_path) == [".tmp-young"]


def test_a_temporary_that_vanishes_meanwhile_is_skipped_and_the_others_removed(tmp_path, monkeypatch):
    before = time.time()
    for name in (".tmp-a", ".tmp-b", ".tmp-c"):
        _aged(tmp_path / name, before - 1000)
    rm = fsspec.implementations.local.LocalFileSystem.rm

    def renamed_meanwhile(self: Any, path: str, *args: Any, **kwargs: Any) -> None:
        if path.endswith(".tmp-b"):
            raise FileNotFoundError(path)
        rm(self, path, *args, **kwargs)

    monkeypatch.setattr(fsspec.implementations.local.LocalFileSystem, "rm", renamed_meanwhile)
    assert sorted(remove_stale_temporaries(str(tmp_path), before)) == [str(tmp_path / ".tmp-a"),
                                                                       str(tmp_path / ".tmp-c")]


def test_no_temporaries_are_looked_for_remotely_or_in_a_missing_folder(tmp_path, memory):
    memory.pipe_file("/o/.tmp-x", b"half")
    assert remove_stale_temporaries("memory://o", time.time() + 10_000) == []
    assert memory.find("/") == ["/o/.tmp-x"]
    assert remove_stale_temporaries(str(tmp_path / "missing"), time.time()) == []

