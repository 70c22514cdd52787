"""Bundled models: chunk assembly into the cache, checksum verification, clear errors."""

from __future__ import annotations

import hashlib

import pytest

from alignlab.errors import AlignlabError
from alignlab.models import bundled, load_model


def fake_chunked_model(
    tmp_path, monkeypatch, sha256: str | None = None
) -> tuple[bundled.BundledModel, bytes]:
    parts = [b"GGUF-part-one|", b"part-two|", b"part-three"]
    site = tmp_path / "site"
    for i, data in enumerate(parts, 1):
        pkg = site / f"fakemodel_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
        (pkg / "data" / f"m.gguf.part0{i - 1}").write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(parts)
    model = bundled.BundledModel(
        name="fake-model",
        description="test",
        packages=("fakemodel-part1==1",),
        chunks=tuple((f"fakemodel_part{i}", f"data/m.gguf.part0{i - 1}") for i in range(1, 4)),
        filename="fake.gguf",
        sha256=sha256 or hashlib.sha256(whole).hexdigest(),
        license="test",
        chat_template=False,
    )
    monkeypatch.setitem(bundled.BUNDLED, model.name, model)
    monkeypatch.setenv("ALIGNLAB_CACHE_DIR", str(tmp_path / "cache"))
    return model, whole


def test_chunks_are_assembled_once_into_the_cache(tmp_path, monkeypatch):
    model, whole = fake_chunked_model(tmp_path, monkeypatch)
    path = bundled.resolve(model.name)
    assert path == tmp_path / "cache" / "models" / "fake.gguf"
    assert path.read_bytes() == whole
    mtime = path.stat().st_mtime_ns
    assert bundled.resolve(model.name).stat().st_mtime_ns == mtime  # reused, not rebuilt
    assert bundled.verify(model.name)[0]


def test_checksum_mismatch_is_a_clear_error(tmp_path, monkeypatch):
    model, _ = fake_chunked_model(tmp_path, monkeypatch, sha256="0" * 64)
    with pytest.raises(AlignlabError, match="checksum mismatch for model fake-model"):
        bundled.resolve(model.name)
    ok, message = bundled.verify(model.name)
    assert not ok and "0000" in message


def test_a_tampered_cached_file_is_caught(tmp_path, monkeypatch):
    model, _ = fake_chunked_model(tmp_path, monkeypatch)
    path = bundled.resolve(model.name)
    path.write_bytes(b"tampered")
    with pytest.raises(AlignlabError, match="checksum mismatch"):
        bundled.resolve(model.name)


def test_missing_package_says_how_to_install(monkeypatch):
    model = bundled.BundledModel(
        name="absent", description="", packages=("absent-pkg==1",), chunks=(("no_such_pkg_xyz", "a.gguf"),),
        filename="a.gguf", sha256="0" * 64, license="", chat_template=False,
    )  # fmt: skip
    monkeypatch.setitem(bundled.BUNDLED, "absent", model)
    with pytest.raises(AlignlabError, match="alignlab models install absent"):
        bundled.resolve("absent")


def test_default_model_is_installed_and_verified():
    ok, message = bundled.verify(bundled.DEFAULT_MODEL)
    assert ok, message


@pytest.mark.parametrize(
    "spec", ["nosuch", "gguf:/no/such/file.gguf", "openai:missing-url", "hf:./no/such/dir"]
)
def test_bad_specs_fail_with_one_clear_error(spec):
    with pytest.raises(AlignlabError):
        load_model(spec)
