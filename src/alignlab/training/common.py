"""What every fine-tuning stage shares: the weights a model spec names, LoRA, the trainer's arguments,
resuming from the last checkpoint, and saving the result as a plain transformers folder.

Training uses TRL and PEFT on the transformers weights of a model: a bundled model (its GGUF dequantised
once into a transformers folder), or `hf:FOLDER` / `hf:HUB-ID`. A finished stage leaves `model/` (LoRA merged
into the weights, so any `hf:` spec loads it without PEFT); until then `checkpoints/` holds the trainer's
checkpoints every `save_steps` steps, and the stage started again resumes from the newest.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from alignlab.errors import AlignlabError

CHECKPOINTS = "checkpoints"
MODEL = "model"
MANIFEST = "alignlab-whole.json"  # in a checkpoint once the trainer finished saving it: {file: size}


def hf_folder(spec: str) -> str:
    """The transformers weights a model spec names (a folder, or a hub id), or a one-line error."""
    from alignlab.models import bundled, declared_parameters
    from alignlab.models.hf import _resolve_folder

    spec = declared_parameters(spec)[0]  # a declared parameter count does not change the weights
    prefix, _, rest = spec.partition(":")
    if spec in bundled.BUNDLED:
        target = str(bundled.resolve(spec))
    elif prefix == "hf" and rest:
        target = str(bundled.resolve(rest)) if rest in bundled.BUNDLED else rest
    else:
        raise AlignlabError(
            f"cannot fine-tune {spec!r}: training needs transformers weights (a bundled name or hf:FOLDER-OR-HUB-ID)"
        )
    folder, _ = _resolve_folder(target)
    return folder


def load_tokenizer(folder: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:  # padding only; masked out of every loss
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def lora(training, task_type: str):
    from peft import LoraConfig

    return LoraConfig(
        r=training.lora_r,
        lora_alpha=training.lora_alpha,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type=task_type,
    )


def trainer_arguments(training, folder: Path, progress: bool, seed: int) -> dict:
    """Keyword arguments every TRL config here shares. The learning rate is constant, as the paper's (§3.1).

    TRL's configs default to bf16 autocast and gradient checkpointing. On a CPU without native bf16 the
    autocast is emulated (a training step of the 135M model measured 7-10x slower than in fp32) and there is no
    accelerator memory to save by recomputing activations, so both are on only where a GPU is (bf16 where it
    supports it). The stage's metrics name the precision used (`train.precision`)."""
    accelerator = _has_accelerator()
    return {
        "output_dir": str(folder / CHECKPOINTS),
        "per_device_train_batch_size": training.train_batch_size,
        "num_train_epochs": training.epochs,
        "learning_rate": training.learning_rate,
        "lr_scheduler_type": "constant",
        "max_length": training.max_length,
        "save_strategy": "steps",
        "save_steps": training.save_steps,
        "save_total_limit": 2,
        "logging_steps": 5,
        "report_to": [],
        "disable_tqdm": not progress,
        "seed": seed,
        "data_seed": seed,
        "use_cpu": not accelerator,
        "bf16": accelerator and _supports_bf16(),
        "gradient_checkpointing": accelerator,
        "dataloader_num_workers": 0,
    }


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available()


def _supports_bf16() -> bool:
    import torch

    return torch.cuda.is_bf16_supported()


def last_checkpoint(folder: Path) -> str | None:
    """The newest whole checkpoint in `folder`: one the trainer finished writing (a kill mid-save, or mid-way
    through deleting an old one, leaves a folder that must not be resumed from)."""
    whole = [path for path in _checkpoints(folder) if _is_whole(path)]
    return str(whole[-1]) if whole else None


def _checkpoints(folder: Path) -> list[Path]:
    """`checkpoint-N` folders, by step."""
    found = []
    if (folder / CHECKPOINTS).is_dir():
        for path in (folder / CHECKPOINTS).iterdir():
            step = path.name.removeprefix("checkpoint-")
            if path.is_dir() and step.isdigit():
                found.append((int(step), path))
    return [path for _, path in sorted(found)]


def _is_whole(checkpoint: Path) -> bool:
    """Every file the manifest (written once the trainer finished saving) names is there, at its size."""
    try:
        manifest = json.loads((checkpoint / MANIFEST).read_text(encoding="utf-8"))
        return all((checkpoint / name).stat().st_size == size for name, size in manifest.items())
    except (OSError, ValueError, AttributeError):
        return False


def _write_manifest(checkpoint: Path) -> None:
    from alignlab.atomic import write_text_atomic

    files = {
        str(path.relative_to(checkpoint)): path.stat().st_size
        for path in sorted(checkpoint.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    write_text_atomic(checkpoint / MANIFEST, json.dumps(files, indent=1) + "\n")


def _manifest_callback():
    """A trainer callback that marks each checkpoint whole once the trainer has finished saving it."""
    from transformers import TrainerCallback

    class MarkWhole(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if checkpoint.is_dir():
                _write_manifest(checkpoint)

    return MarkWhole()


def _drop_partial_checkpoints(folder: Path) -> None:
    """Remove checkpoints a kill left half-written, so neither we nor the trainer's rotation reads them."""
    for path in _checkpoints(folder):
        if not _is_whole(path):
            shutil.rmtree(path, ignore_errors=True)


# how a full disk reads when torch (its zip writer checks positions, not errno) or safetensors reports it
_DISK_FULL_WORDS = ("No space left on device", "File too large", "Disk quota exceeded", "unexpected pos")


@contextlib.contextmanager
def _disk_full_is_one_line(path: Path) -> Iterator[None]:
    """A full disk while the trainer or save_pretrained writes `path` becomes the CLI's one-line error; the
    checkpoint it cut short has no manifest, so the next start resumes from the one before."""
    from alignlab.atomic import DISK_FULL, write_error

    try:
        yield
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            raise write_error(path, exc) from exc
        if not isinstance(exc, AlignlabError) and any(word in str(exc) for word in _DISK_FULL_WORDS):
            raise AlignlabError(f"no space left on device writing {path}") from exc
        raise


def train(trainer, folder: Path, name: str) -> dict:
    """Train, from the newest whole checkpoint in `folder` if there is one; Ctrl-C leaves the checkpoints for
    the next start. Returns the trainer's final log."""
    _drop_partial_checkpoints(folder)
    trainer.add_callback(_manifest_callback())
    resume = last_checkpoint(folder)
    if resume:
        print(f"{name}: resuming from {Path(resume).name}", file=sys.stderr)
    try:
        with _disk_full_is_one_line(folder / CHECKPOINTS):
            result = trainer.train(resume_from_checkpoint=resume)
    except KeyboardInterrupt:
        kept = last_checkpoint(folder)
        where = f"from {Path(kept).name}" if kept else "from the start (no checkpoint was saved yet)"
        print(f"\n{name}: interrupted; run the same command again to resume {where}", file=sys.stderr)
        raise
    log = {k: v for k, v in result.metrics.items() if isinstance(v, int | float)}
    return {**log, "precision": "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32"}


def save_merged(model, tokenizer, folder: Path, provenance: dict) -> Path:
    """The trained weights (LoRA merged in) and tokenizer as `folder/model`, written aside and moved into place
    whole; the checkpoints go once the model is safe."""
    from alignlab.atomic import replacing

    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    dest = folder / MODEL
    shutil.rmtree(dest, ignore_errors=True)
    with _disk_full_is_one_line(dest), replacing(dest) as tmp:
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "alignlab-training.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(folder / CHECKPOINTS, ignore_errors=True)
    return dest


def quiet_transformers() -> None:
    """Training's own progress bar stays; the libraries' notices and per-map bars go."""
    import warnings

    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
