"""Dataset registry: pins, finding files, checksum errors, downloads from a local HTTP server, status."""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import shutil
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from datadir import DATA as SHARED
from datadir import needs

from alignlab.data import cli as data_cli
from alignlab.data import registry
from alignlab.data.manifest import MANIFEST
from alignlab.data.registry import GITHUB_RAW, DataFile
from alignlab.errors import AlignlabError

needs_shared = needs("bbq")
BBQ = registry.REGISTRY["bbq"]
AGE = BBQ.file("Age")
AGE_UPSTREAM = f"nyu-mll/BBQ/{registry.BBQ_COMMIT}/data/Age.jsonl"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Every test gets its own empty cache and no data dir / URL from the environment."""
    monkeypatch.setenv("ALIGNLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ALIGNLAB_DATA_DIR", raising=False)
    monkeypatch.delenv("ALIGNLAB_DATA_URL", raising=False)


def _files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


# ---------------------------------------------------------------------------------------------
# the registry itself


def test_bbq_has_all_eleven_categories_pinned_to_the_commit():
    stems = [f.stem for f in BBQ.data_files]
    # the official repository's data/ folder (Parrish et al. 2022)
    assert stems == [
        "Age", "Disability_status", "Gender_identity", "Nationality", "Physical_appearance", "Race_ethnicity",
        "Race_x_SES", "Race_x_gender", "Religion", "SES", "Sexual_orientation",
    ]  # fmt: skip
    for f in BBQ.data_files:
        assert f.path == f"bbq/data/{f.stem}.jsonl"
        assert (
            f.url == f"{GITHUB_RAW}/nyu-mll/BBQ/bea11bd97d79217245b5871acd247b9d6eb24598/data/{f.stem}.jsonl"
        )
    assert AGE.sha256 == "46e805b3fc2d8cbd26eeb8e8430d98cf7b2dc9c83574ff3674e8ce4f0fca2a60"
    assert AGE.rows == 3680
    gi = BBQ.file("Gender_identity")
    assert gi.sha256 == MANIFEST["bbq/data/Gender_identity.jsonl"][2]
    assert gi.git_blob == "dc79ceaaa9e7126edc99a200d632899c50274b16"
    for cat, blob in [
        ("Race_ethnicity", "68daf3d692b27a10596772b3b15742b26f0b110e"),
        ("Race_x_SES", "905cd8a5b8734e2063fe524e69a38f0a71c75907"),
        ("Race_x_gender", "dd09a905b284690445d36259d675243950fa0bd7"),
        ("SES", "78d11ffbdb70f501617345e5c697d00045d57c29"),
    ]:
        f = BBQ.file(cat)
        assert f.sha256 is None and f.git_blob == blob and f.pinned == f"git-blob:{blob}"


def test_every_manifest_file_is_registered_once_with_its_sha256():
    seen: dict[str, str] = {}
    for spec in registry.REGISTRY.values():
        assert spec.name and spec.license and spec.upstream and spec.description
        for f in spec.files:
            assert f.path not in seen, f"{f.path} in {seen.get(f.path)} and {spec.name}"
            seen[f.path] = spec.name
            assert f.sha256 or f.git_blob
            if f.path in MANIFEST:
                assert (f.size, f.rows, f.sha256) == MANIFEST[f.path]
    assert set(MANIFEST) <= set(seen)
    assert set(seen) - set(MANIFEST) == {
        f"bbq/data/{c}.jsonl" for c in ("Race_ethnicity", "Race_x_SES", "Race_x_gender", "SES")
    }
    assert {"winogender", "anthropic-evals", "mmlu", "truthfulqa"} <= set(registry.REGISTRY)
    assert len(registry.REGISTRY["anthropic-evals"].files) == 197
    assert registry.REGISTRY["winogender"].file("templates.tsv").url == (
        f"{GITHUB_RAW}/rudinger/winogender-schemas/1c7f8b481ad8a234b41e9f76a424d6e856e13f7f/data/templates.tsv"
    )


def test_unknown_dataset_is_a_user_error():
    with pytest.raises(AlignlabError, match="unknown dataset 'nope'"):
        registry.get("nope")


def test_git_blob_hash_is_what_git_hash_object_prints(tmp_path):
    p = tmp_path / "hello.txt"
    p.write_bytes(b"hello\n")
    assert registry.git_blob_file(p) == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object`
    assert registry.sha256_file(p) == hashlib.sha256(b"hello\n").hexdigest()


@needs_shared
def test_shared_gender_identity_matches_its_upstream_git_blob():
    f = BBQ.file("Gender_identity")
    assert registry.git_blob_file(SHARED / f.path) == f.git_blob


# ---------------------------------------------------------------------------------------------
# data dir


def test_data_dir_from_flag_then_env(monkeypatch, tmp_path):
    assert registry.data_dir(None) is None
    monkeypatch.setenv("ALIGNLAB_DATA_DIR", str(tmp_path))
    assert registry.data_dir(None) == tmp_path
    other = tmp_path / "other"
    other.mkdir()
    assert registry.data_dir(str(other)) == other


def test_missing_data_dir_is_named(monkeypatch, tmp_path):
    gone = tmp_path / "no-such-dir"
    with pytest.raises(AlignlabError, match=f"data directory {gone} .*does not exist"):
        registry.data_dir(str(gone))
    monkeypatch.setenv("ALIGNLAB_DATA_DIR", str(gone))
    with pytest.raises(AlignlabError, match="ALIGNLAB_DATA_DIR"):
        registry.data_dir(None)
    with pytest.raises(AlignlabError, match=str(gone)):
        registry.locate("bbq", gone)


def test_no_data_dir_no_downloads_nothing_cached():
    with pytest.raises(AlignlabError) as exc:
        registry.locate("bbq", None, download=False)
    assert "no data directory: pass --data-dir or set ALIGNLAB_DATA_DIR" in str(exc.value)
    assert "'bbq'" in str(exc.value)


def test_empty_data_dir_says_nothing_was_found(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(AlignlabError, match="dataset 'bbq': none of its 11 data files found"):
        registry.locate("bbq", tmp_path / "d")


def test_dataset_that_needs_all_files_names_the_missing_one(tmp_path):
    d = tmp_path / "d"
    (d / "humaneval").mkdir(parents=True)
    # humaneval has one data file: absent -> nothing found; give winogender 2 of its 3 instead
    (d / "winogender").mkdir()
    for name in ("all_sentences.tsv", "templates.tsv"):
        _copy_or_skip(d, f"winogender/{name}")
    with pytest.raises(AlignlabError, match="missing winogender/occupations-stats.tsv"):
        registry.locate("winogender", d)


def _copy_or_skip(d: Path, rel: str) -> None:
    if not (SHARED / rel).is_file():
        pytest.skip(f"{SHARED / rel} not present")
    (d / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SHARED / rel, d / rel)


@needs_shared
def test_partial_bbq_in_a_data_dir_runs_on_what_is_found(tmp_path):
    d = tmp_path / "d"
    _copy_or_skip(d, "bbq/data/Religion.jsonl")
    located = registry.locate("bbq", d)
    assert list(located) == [d / "bbq/data/Religion.jsonl"]
    assert located.found_stems == ["Religion"]
    assert len(located.missing) == 10
    assert "10 of 11 files not found" in located.warnings[0]
    assert registry.locate("bbq", d, only=["Religion"]).warnings == []
    with pytest.raises(AlignlabError, match="no file"):
        registry.locate("bbq", d, only=["Bogus"])


def test_checksum_mismatch_in_data_dir_names_the_file(tmp_path):
    d = tmp_path / "d"
    bad = d / "bbq" / "data" / "Age.jsonl"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"example_id": 0}\n')
    with pytest.raises(AlignlabError) as exc:
        registry.locate("bbq", d)
    msg = str(exc.value)
    assert str(bad) in msg and "checksum mismatch" in msg and "expected" in msg


def test_same_size_corruption_is_caught_and_rewrites_are_rehashed(tmp_path):
    content = b'{"a": 1}\n'
    p = tmp_path / "f.jsonl"
    p.write_bytes(content)
    df = DataFile("f.jsonl", hashlib.sha256(content).hexdigest(), 1, None, size=len(content))
    registry.verify(df, p)  # ok, and memoised
    p.write_bytes(b'{"a": 2}\n')  # same size
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(
        AlignlabError, match=f"{p}: checksum mismatch: expected sha256:{df.sha256}, got sha256:"
    ):
        registry.verify(df, p)


# ---------------------------------------------------------------------------------------------
# downloads from a local server laid out like raw.githubusercontent.com


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        pass


@pytest.fixture
def server(tmp_path):
    """(root folder, base URL) of an HTTP server on 127.0.0.1 serving the folder."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _serve(root: Path, upstream_path: str, content: bytes) -> None:
    p = root / upstream_path
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(content)


def _cache_datasets() -> Path:
    return registry.datasets_cache()


@needs_shared
def test_download_verifies_and_writes_to_the_cache(server):
    root, base = server
    _serve(root, AGE_UPSTREAM, (SHARED / AGE.path).read_bytes())
    located = registry.locate("bbq", None, download=True, only=["Age"], base_url=base)
    dest = _cache_datasets() / "bbq" / "data" / "Age.jsonl"
    assert list(located) == [dest]
    assert registry.sha256_file(dest) == AGE.sha256
    assert _files_under(_cache_datasets()) == ["bbq/data/Age.jsonl"]  # no temp file left
    # the next run finds it in the cache, downloads off
    assert list(registry.locate("bbq", None, download=False)) == [dest]


def test_download_with_base_url_from_the_environment(server, monkeypatch):
    root, base = server
    content = b'{"x": 1}\n'
    df = DataFile("demo/x.jsonl", hashlib.sha256(content).hexdigest(), 1, f"{GITHUB_RAW}/o/r/c0ffee/x.jsonl")
    _serve(root, "o/r/c0ffee/x.jsonl", content)
    monkeypatch.setenv("ALIGNLAB_DATA_URL", base + "/")
    assert registry.resolve_url(df) == f"{base}/o/r/c0ffee/x.jsonl"
    dest = registry.download(df, _cache_datasets() / df.path)
    assert dest.read_bytes() == content


def test_download_of_a_git_blob_pinned_file(server):
    root, base = server
    content = b'{"example_id": 0}\n'
    blob = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
    df = DataFile(
        "bbq/data/SES.jsonl", None, 1, f"{GITHUB_RAW}/nyu-mll/BBQ/abc/data/SES.jsonl", git_blob=blob
    )
    _serve(root, "nyu-mll/BBQ/abc/data/SES.jsonl", content)
    dest = registry.download(df, _cache_datasets() / df.path, base_url=base)
    assert dest.read_bytes() == content
    # and a wrong one
    _serve(root, "nyu-mll/BBQ/abc/data/SES.jsonl", content + b"\n")
    dest.unlink()
    with pytest.raises(AlignlabError, match=f"expected git-blob:{blob}, got git-blob:"):
        registry.download(df, dest, base_url=base)
    assert _files_under(_cache_datasets()) == []


def test_download_with_bad_checksum_raises_and_leaves_no_file(server):
    root, base = server
    _serve(root, AGE_UPSTREAM, b'{"not": "the real file"}\n')
    with pytest.raises(AlignlabError) as exc:
        registry.locate("bbq", None, download=True, only=["Age"], base_url=base)
    msg = str(exc.value)
    assert f"{base}/{AGE_UPSTREAM}" in msg
    assert f"expected sha256:{AGE.sha256}" in msg
    assert "got sha256:" + hashlib.sha256(b'{"not": "the real file"}\n').hexdigest() in msg
    assert _files_under(_cache_datasets()) == []


def test_http_error_names_the_url(server):
    _root, base = server
    with pytest.raises(AlignlabError, match=rf"cannot download {base}/{AGE_UPSTREAM}: HTTP 404"):
        registry.locate("bbq", None, download=True, only=["Age"], base_url=base)
    assert _files_under(_cache_datasets()) == []


def test_unreachable_url_names_the_url():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with pytest.raises(AlignlabError, match=rf"cannot download {base}/{AGE_UPSTREAM}: ConnectError"):
        registry.locate("bbq", None, download=True, only=["Age"], base_url=base)
    assert _files_under(_cache_datasets()) == []


def test_corrupt_cached_copy_is_downloaded_again(server):
    root, base = server
    content = b'{"x": 2}\n'
    df = DataFile("demo/y.jsonl", hashlib.sha256(content).hexdigest(), 1, f"{GITHUB_RAW}/o/r/c/y.jsonl")
    spec = registry.DatasetSpec("demo", "d", "MIT", "o/r", "c", (df,))
    _serve(root, "o/r/c/y.jsonl", content)
    cached = _cache_datasets() / df.path
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"garbage\n")
    with pytest.raises(AlignlabError, match=f"{cached}: checksum mismatch"):
        registry.locate(spec, None, download=False)
    assert list(registry.locate(spec, None, download=True, base_url=base)) == [cached]
    assert cached.read_bytes() == content


# ---------------------------------------------------------------------------------------------
# status and the CLI command


def _status_dir(tmp_path: Path) -> Path:
    d = tmp_path / "d"
    _copy_or_skip(d, "winogender/templates.tsv")
    bad = d / "winogender" / "all_sentences.tsv"
    bad.write_bytes(b"x" * MANIFEST["winogender/all_sentences.tsv"][0])  # right size, wrong bytes
    return d


def test_dataset_status_reports_ok_mismatch_missing(tmp_path):
    d = _status_dir(tmp_path)
    rows = {r.file: r for r in registry.dataset_status(d, names=["winogender"])}
    assert rows["winogender/templates.tsv"].checksum == "ok"
    assert rows["winogender/templates.tsv"].where == "data dir"
    assert rows["winogender/templates.tsv"].rows == 120
    assert rows["winogender/all_sentences.tsv"].checksum == "mismatch"
    assert rows["winogender/occupations-stats.tsv"].checksum == "missing"
    assert rows["winogender/occupations-stats.tsv"].where == "-"
    quick = {
        r.file: r.checksum for r in registry.dataset_status(d, verify_hashes=False, names=["winogender"])
    }
    assert quick["winogender/all_sentences.tsv"] == "unverified"  # sizes only


def _cli_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="alignlab")
    data_cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["datasets", *argv])


def test_cli_datasets_table_and_exit_status(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich: no folding of file names
    d = _status_dir(tmp_path)
    args = _cli_args(["winogender", "--data-dir", str(d), "--verify"])
    assert args.func is data_cli.run
    assert data_cli.run(args) == 1
    out = capsys.readouterr().out
    assert "templates.tsv" in out and "mismatch" in out and "missing" in out
    (d / "winogender" / "all_sentences.tsv").unlink()
    assert data_cli.run(_cli_args(["--data-dir", str(d), "--verify"])) == 0
    assert "winogender" in capsys.readouterr().out


def test_cli_download(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    root, base = server
    content_ok = (SHARED / "winogender" / "templates.tsv").read_bytes() if SHARED.is_dir() else None
    if content_ok is None:
        pytest.skip("shared data not present")
    d = tmp_path / "empty"
    d.mkdir()
    wg = registry.REGISTRY["winogender"]
    for f in wg.files:
        _serve(root, f.url[len(GITHUB_RAW) + 1 :], (SHARED / f.path).read_bytes())
    args = _cli_args(
        ["winogender", "--data-dir", str(d), "--download", "winogender", "--base-url", base, "--verify"]
    )
    assert data_cli.run(args) == 0
    assert _files_under(_cache_datasets()) == [
        "winogender/all_sentences.tsv",
        "winogender/occupations-stats.tsv",
        "winogender/templates.tsv",
    ]
    assert "cache" in capsys.readouterr().out


def test_catalogue_source_rules_give_each_file_its_upstream_url():
    entry = {
        "repo": "o/r",
        "commit": "c1",
        "source": [
            {"match": "data/*.jsonl", "path": "raw/{name}"},
            {"match": "LICENSE", "repo": "other/lic", "commit": "c2", "path": "LICENSE.txt"},
            {"match": "private/*", "path": ""},
        ],
    }
    base = registry.GITHUB_RAW
    assert registry._url(entry, "data/a.jsonl") == f"{base}/o/r/c1/raw/a.jsonl"
    assert registry._url(entry, "LICENSE") == f"{base}/other/lic/c2/LICENSE.txt"
    assert registry._url(entry, "private/x.csv") is None  # no URL known
    assert registry._url(entry, "docs/README.md") == f"{base}/o/r/c1/docs/README.md"  # no rule: same path
    # every catalogue entry names what the registry needs, and every file has a pin
    for spec in registry.REGISTRY.values():
        assert spec.description and spec.license and spec.upstream
        assert all(f.pinned for f in spec.files)
