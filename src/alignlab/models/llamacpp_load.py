"""How the llama.cpp backend loads a model: which weight buffers it allows, and what llama.cpp then used.

llama.cpp can move a model's weights at load time into "extra" CPU buffer types that repack them for
faster kernels: AMX (Intel CPUs with Advanced Matrix Extensions, when llama.cpp was built with them,
as `-march=native` does on such a CPU) and CPU_REPACK (AVX2/AVX-512 and ARM layouts of Q4_0, Q4_K,
IQ4_NL, MXFP4, ...). AMX is tried first, and its matrix multiplication crashes with a segmentation fault
on some AMX machines (llama.cpp issue 20824, "segfault in ggml_backend_amx_mul_mat"; seen here on
SmolLM2 Q4_1 and Gemma 3 / Qwen 2.5 Q4_K_M at the first decode). So where the llama.cpp build has AMX
kernels and the CPU has AMX, models load without the extra buffer types; elsewhere they keep them
(CPU_REPACK is what makes Q4_K models fast on AVX2 CPUs). `ALIGNLAB_LLAMACPP_REPACK=on|off|auto` (or
the backend's `repack` argument) overrides the choice.

What llama.cpp actually used is read from its load log ("AMX model buffer size = 95.34 MiB") and kept
in the backend's `info()`, so a run folder says how its numbers were computed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
from pathlib import Path

from alignlab.errors import AlignlabError

REPACK_ENV = "ALIGNLAB_LLAMACPP_REPACK"
_SETTINGS = {"auto": None, "on": True, "off": False, "1": True, "0": False, "true": True, "false": False}
_BUFFER_LINE = re.compile(r"\b([A-Za-z0-9_]+) model buffer size\s*=\s*([0-9.]+) MiB")
AMX_CPU_FLAGS = ("amx_tile", "amx_int8")


def repack_setting(value: str | bool | None = None) -> bool | None:
    """True or False when the user chose (argument, else environment), None for automatic."""
    if isinstance(value, bool):
        return value
    raw = value if value is not None else os.environ.get(REPACK_ENV, "auto")
    key = str(raw).strip().lower()
    if key not in _SETTINGS:
        raise AlignlabError(f"{REPACK_ENV}={raw!r} is not one of auto, on, off")
    return _SETTINGS[key]


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (Linux); None where that cannot be read."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return None


def build_has_amx(system_info: str) -> bool:
    """Whether llama.cpp was built with its AMX kernels (`llama_print_system_info()` lists AMX_INT8 = 1)."""
    return re.search(r"\bAMX_INT8\s*=\s*1\b", system_info) is not None


def extra_buffers_allowed(choice: bool | None, system_info: str, flags: set[str] | None) -> bool:
    """Whether to load with llama.cpp's extra (repacking) buffer types.

    Automatic: off only where they would include AMX, i.e. the build has AMX kernels and the CPU has AMX
    (or its flags cannot be read); on everywhere else.
    """
    if choice is not None:
        return choice
    if not build_has_amx(system_info):
        return True
    cpu_has_amx = flags is None or any(flag in flags for flag in AMX_CPU_FLAGS)
    return not cpu_has_amx


def weight_buffers(log: str) -> dict[str, float]:
    """MiB of weights per buffer type, from llama.cpp's load log (e.g. {"AMX": 95.34, "CPU_Mapped": 92.1})."""
    found: dict[str, float] = {}
    for name, mib in _BUFFER_LINE.findall(log):
        found[name] = round(found.get(name, 0.0) + float(mib), 2)
    return found


@contextlib.contextmanager
def loading(lib, use_extra_bufts: bool):
    """While llama-cpp-python builds a model: set `use_extra_bufts`, and collect llama.cpp's log.

    `Llama()` has no argument for use_extra_bufts; it takes its model parameters from
    `llama_model_default_params()`, looked up on its module at call time, so that function is wrapped for
    the duration. llama.cpp's log goes to a callback of ours meanwhile (yielded as a list of text pieces),
    and llama-cpp-python's own callback is put back afterwards.
    """
    module = lib.llama_cpp
    fields = {name for name, _ in module.llama_model_params._fields_}
    if not use_extra_bufts and "use_extra_bufts" not in fields:
        raise AlignlabError(
            f"llama-cpp-python {lib.__version__} cannot load models without repacking buffers "
            "(needed on this AMX CPU): install the version pinned in alignlab's llamacpp extra"
        )
    original = module.llama_model_default_params

    def params():
        value = original()
        value.use_extra_bufts = use_extra_bufts
        return value

    pieces: list[str] = []

    def collect(_level, text, _user_data):
        pieces.append(text.decode("utf-8", errors="replace") if text else "")

    callback = lib.llama_log_callback(collect)  # a reference must outlive the load
    module.llama_model_default_params = params
    lib.llama_log_set(callback, ctypes.c_void_p(0))
    try:
        yield pieces
    finally:
        module.llama_model_default_params = original
        from llama_cpp import _logger

        lib.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


def last_error(pieces: list[str]) -> str | None:
    """The last line of a load log that says what went wrong, if any."""
    lines = [line.strip() for line in "".join(pieces).splitlines() if line.strip()]
    for line in reversed(lines):
        if re.search(r"error|failed|invalid|unknown", line, re.IGNORECASE):
            return line
    return None


def free_side_context(owner) -> None:
    """Free the `batch` and `ctx` of an extra llama.cpp context (features, generation) once."""
    if getattr(owner, "batch", None) is not None:
        owner.lib.llama_batch_free(owner.batch)
        owner.batch = None
    if getattr(owner, "ctx", None):
        owner.lib.llama_free(owner.ctx)
        owner.ctx = None
