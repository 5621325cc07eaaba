"""Atomic checkpoints, and loading that refuses damaged or foreign files clearly."""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from revact.train.config import saved_recipe_value

__all__ = ["CheckpointError", "FORMAT", "VERSION", "save_checkpoint", "load_checkpoint",
           "check_out_dir"]

FORMAT = "revact.train.checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used to resume; the message says why and what to do."""


def check_out_dir(path: str | os.PathLike, what: str = "--out") -> Path:
    """Check, before any work starts, that ``path`` is a folder or can be made one.

    Nothing is created, so a run that fails later for another reason (missing data, say)
    leaves no empty folder behind.

    Raises:
        ValueError: ``path`` or one of its parents is an existing file, or the nearest
            existing parent is not writable; the message names ``what``.
    """
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise ValueError(f"{what} {path}: {p} is an existing file; {what} must name "
                                 f"a folder (give another path, or move the file away)")
            if p != path and not os.access(p, os.W_OK | os.X_OK):
                raise ValueError(f"{what} {path}: cannot create it, {p} is not writable")
            break
    return path


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` atomically.

    The file is written to a temporary name in the same folder, flushed to disk, then
    ``os.replace``-d over ``path``: a run killed mid-write leaves the previous checkpoint
    intact, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "version": VERSION, **state}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | os.PathLike, recipe: dict | None = None) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` and check it fits ``recipe``.

    Loading uses ``weights_only=True``: a checkpoint holds tensors and plain containers
    only, so a pickle carrying code is refused rather than executed.

    Raises:
        CheckpointError: missing, corrupt/truncated, not a revact training checkpoint, a
            newer format, or written for a different recipe (the differences are listed).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train without --resume first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses pickled classes ("Unsupported global: GLOBAL x.y") without
        # running them; any other unpickling failure means the bytes are damaged.
        found = [ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln]
        if found:
            raise CheckpointError(
                f"{path} is not a revact training checkpoint: it pickles Python objects "
                f"({found[0]}), which --resume refuses to load; --resume only accepts "
                "checkpoint.pt files written by 'revact train'"
            ) from e
        raise CheckpointError(
            f"{path} is corrupt or truncated and cannot be resumed from "
            f"(unpickling failed). Delete it to start over, or point --resume at another "
            "checkpoint."
        ) from e
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        raise CheckpointError(
            f"{path} is corrupt or truncated and cannot be resumed from "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'}). "
            "Delete it to start over, or point --resume at another checkpoint."
        ) from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        keys = list(state)[:6] if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path} is not a revact training checkpoint (found {keys}); "
            "--resume only accepts checkpoint.pt files written by 'revact train'"
        )
    if state.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {state['version']}; this revact reads "
            f"up to {VERSION}. Upgrade revact."
        )
    for key in ("config", "epoch", "model", "optimizer", "scheduler", "rng"):
        if key not in state:
            raise CheckpointError(f"{path} is incomplete: it lacks {key!r}")
    if recipe is not None:
        saved = state["config"]
        diff = [f"{k}: checkpoint {saved_recipe_value(saved, k)!r} vs now {v!r}"
                for k, v in recipe.items() if saved_recipe_value(saved, k) != v]
        if diff:
            raise CheckpointError(
                f"{path} was written by a different run; resuming would not reproduce it:\n  "
                + "\n  ".join(diff)
                + "\nUse the same options, or a different --out for a new run."
            )
    return state


def model_args(state: dict[str, Any]) -> dict[str, int]:
    """``num_classes`` and ``in_chans`` to rebuild the network a checkpoint holds.

    Checkpoints written before these were stored (revact 0.1.0 sessions before RevCol joined
    the registry) only held reference networks whose head is ``classifier``: those are read
    off the weights.
    """
    if "model_args" in state:
        return dict(state["model_args"])
    w = state["model"]
    in_chans = next(v for k, v in w.items() if k.endswith("weight") and v.dim() == 4).shape[1]
    return {"num_classes": w["classifier.bias"].shape[0], "in_chans": in_chans}
