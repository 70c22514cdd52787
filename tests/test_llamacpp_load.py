"""The llama.cpp backend's choice of weight buffers (AMX repacking crashes on some CPUs) and its load log."""

from __future__ import annotations

import pytest

from alignlab.errors import AlignlabError
from alignlab.models import llamacpp_load as load

AMX_BUILD = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 1 | REPACK = 1 | "
AVX512_BUILD = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 | REPACK = 1 | "
AVX2_BUILD = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | REPACK = 1 | "
SAPPHIRE_RAPIDS = {"avx2", "avx512f", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8"}
EPYC = {"avx2", "avx512f", "avx512_vnni"}


@pytest.mark.parametrize(
    ("system_info", "flags", "allowed"),
    [
        (AMX_BUILD, SAPPHIRE_RAPIDS, False),  # the crash-prone configuration
        (AMX_BUILD, None, False),  # flags unknown: assume the worst
        (AMX_BUILD, EPYC, True),  # AMX kernels built, but no AMX here: llama.cpp offers no AMX buffer
        (AVX512_BUILD, SAPPHIRE_RAPIDS, True),  # a build without AMX kernels: CPU_REPACK only
        (AVX512_BUILD, EPYC, True),
        (AVX2_BUILD, {"avx2"}, True),
        (AVX2_BUILD, None, True),
    ],
)
def test_extra_buffers_are_off_only_where_amx_would_be_used(system_info, flags, allowed):
    assert load.extra_buffers_allowed(None, system_info, flags) is allowed


def test_a_users_choice_wins_either_way():
    assert load.extra_buffers_allowed(True, AMX_BUILD, SAPPHIRE_RAPIDS) is True
    assert load.extra_buffers_allowed(False, AVX2_BUILD, {"avx2"}) is False


def test_repack_setting_from_argument_and_environment(monkeypatch):
    monkeypatch.delenv(load.REPACK_ENV, raising=False)
    assert load.repack_setting() is None
    assert load.repack_setting("on") is True and load.repack_setting(" OFF ") is False
    assert load.repack_setting(False) is False
    monkeypatch.setenv(load.REPACK_ENV, "off")
    assert load.repack_setting() is False
    assert load.repack_setting("auto") is None  # the argument beats the environment
    monkeypatch.setenv(load.REPACK_ENV, "sometimes")
    with pytest.raises(
        AlignlabError, match=r"ALIGNLAB_LLAMACPP_REPACK='sometimes' is not one of auto, on, off"
    ):
        load.repack_setting()


def test_build_has_amx_reads_the_system_info_line():
    assert load.build_has_amx(AMX_BUILD)
    assert not load.build_has_amx(AVX512_BUILD)
    assert not load.build_has_amx("CPU : AMX_INT8 = 0 | AVX2 = 1 |")


def test_cpu_flags_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n"
        "flags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile amx_int8\n\nprocessor\t: 1\n"
    )
    assert load.cpu_flags(cpuinfo) == {"fpu", "sse2", "avx2", "avx512f", "amx_bf16", "amx_tile", "amx_int8"}
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd sve\n")
    assert load.cpu_flags(arm) == {"fp", "asimd", "sve"}
    assert load.cpu_flags(tmp_path / "missing") is None
    (tmp_path / "empty").write_text("")
    assert load.cpu_flags(tmp_path / "empty") is None


def test_weight_buffers_from_the_load_log():
    log = (
        "llama_model_loader: - type q4_1:  211 tensors\n"
        "done_getting_tensors: tensor 'token_embd.weight' (q8_0) (and 61 others) cannot be used with "
        "preferred buffer type AMX, using CPU instead\n"
        "load_tensors:          AMX model buffer size =    95.34 MiB\n"
        "load_tensors:   CPU_Mapped model buffer size =    92.10 MiB\n"
        "load_tensors:   CPU_Mapped model buffer size =     7.90 MiB\n"
        "llama_context:        CPU  output buffer size =     0.19 MiB\n"
    )
    assert load.weight_buffers(log) == {"AMX": 95.34, "CPU_Mapped": 100.0}
    assert load.weight_buffers("") == {}


def test_last_error_names_the_failing_line():
    pieces = [
        "llama_model_loader: loaded meta data\n",
        "gguf_init_from_file_impl: failed to read key",
        "-value pairs\n",
    ]
    assert load.last_error(pieces) == "gguf_init_from_file_impl: failed to read key-value pairs"
    assert load.last_error(["all fine\n"]) is None
