"""The one training loop: supervised fine-tuning and every pretraining objective use it.

A run is a model, a step function (a batch of sample indices -> loss and metrics), a
recipe (Adam, StepLR every ``epochs // 10`` epochs, batch size, seed) and a feedback that
can cancel. Every epoch visits all samples once in an order drawn from a NumPy generator
seeded with the recipe's seed.

With a ``state_path`` the loop writes its whole state after every epoch (atomically):
weights, optimiser, scheduler, the torch RNG, the order generator and the dropout-mask
generator of :mod:`engine.models.layers`. ``resume=True`` continues from that state, so a
killed or cancelled run loses at most one epoch and ends with the same weights, bit for
bit, as a run that was never interrupted (same machine, same thread count).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..errors import CancelledError, InputDataError, ModelLoadError, first_line
from ..models.layers import dropout_rng_state, seed_dropout, set_dropout_rng_state
from ..progress import Feedback, ProgressBar, SilentFeedback

STATE_FORMAT = "factoformer-loop-state/1"

# (sample indices of the batch, 0-based global step) -> (loss to minimise, metrics of the
# batch as means over its samples, e.g. {"train_accuracy": 0.8}).
StepFunction = Callable[[np.ndarray, int], tuple[torch.Tensor, dict[str, float]]]

# (0-based epoch just trained) -> (values for the epoch's history row, e.g. the validation
# loss; True to stop training after this epoch).
EpochEnd = Callable[[int], tuple[dict[str, float], bool]]


class LoopRecipe(Protocol):
    """What the loop reads from a recipe (:class:`~engine.config.TrainingRecipe`, ...)."""

    epochs: int
    learning_rate: float
    batch_size: int
    weight_decay: float
    lr_gamma: float
    seed: int
    max_steps: int | None

    @property
    def lr_step(self) -> int: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass
class FitResult:
    """What a finished run reports: per-epoch history, optimiser steps and wall time."""

    history: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    resumed_at_epoch: int | None = None  # epochs already done when the run was resumed
    stopped: str | None = None  # why training ended before the recipe's end, if it did
    record: dict[str, Any] | None = None  # the caller's record of the run (kept on resume)


def seed_everything(seed: int) -> None:
    """Seed torch (weight init, stock dropout) and the dropout-mask generator.

    Call before building the model, so that the initial weights follow the seed.
    """
    torch.manual_seed(seed)
    seed_dropout(seed)


def fit(
    model: nn.Module,
    step: StepFunction,
    num_samples: int,
    recipe: LoopRecipe,
    feedback: Feedback | None = None,
    state_path: str | os.PathLike[str] | None = None,
    resume: bool = False,
    label: str = "train",
    epoch_end: EpochEnd | None = None,
    time_limit: float | None = None,
    param_groups: list[dict[str, Any]] | None = None,
    record: dict[str, Any] | None = None,
) -> FitResult:
    """Train ``model`` in place with Adam (or the recipe's SGD) and StepLR; the last epoch's
    weights are the result.

    Args:
        model: the module to optimise (all its parameters).
        step: computes the loss of one batch (see :data:`StepFunction`).
        num_samples: samples per epoch; the step function receives indices into them.
        recipe: epochs, learning rate, batch size, weight decay, LR decay, seed, max steps.
        feedback: progress and cancellation; a :class:`ProgressBar` also shows the loss.
        state_path: file for the per-epoch state; None keeps nothing on disk.
        resume: continue from ``state_path`` when it exists.
        label: what the progress bar calls the run.
        epoch_end: called after each epoch (e.g. validation, early stopping).
        time_limit: seconds of training after which the run stops (after a whole step).
        param_groups: Adam parameter groups, e.g. a head with its own ``lr`` (default:
            all of the model's parameters at the recipe's learning rate).
        record: what the caller wants remembered with the weights (e.g. the model's config
            and the pretraining it started from); saved in the state. A resumed run's
            ``record`` is the saved one (the weights came from that run); states written
            before records were kept leave the caller's.

    Raises:
        CancelledError: when the feedback asks to stop (the last epoch's state stays).
    """
    if num_samples < 1:
        raise InputDataError(f"{label}: no samples to train on")
    feedback = feedback or SilentFeedback()
    state_path = Path(state_path) if state_path is not None else None
    optimizer = make_optimizer(param_groups or model.parameters(), recipe)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, recipe.lr_step, gamma=recipe.lr_gamma)
    order_rng = np.random.default_rng(recipe.seed)
    result = FitResult(record=record)
    first_epoch = 0
    if resume and state_path is not None and state_path.exists():
        first_epoch = _restore(state_path, recipe, model, optimizer, scheduler, order_rng, result)
        result.resumed_at_epoch = first_epoch
    batches_per_epoch = -(-num_samples // recipe.batch_size)
    total_steps = recipe.epochs * batches_per_epoch
    if recipe.max_steps is not None:
        total_steps = min(total_steps, recipe.max_steps)
    start = time.monotonic() - result.seconds
    if isinstance(feedback, ProgressBar):  # time left: from one epoch or 5 % of the steps on
        settle = min(batches_per_epoch, max(2, total_steps // 20))
        feedback.estimate_after(min(1.0, (result.steps + settle) / total_steps))
    model.train()
    for epoch in range(first_epoch, recipe.epochs):
        if result.steps >= total_steps or result.stopped:
            break
        order = order_rng.permutation(num_samples)
        sums: dict[str, float] = {}
        seen = 0
        for first in range(0, num_samples, recipe.batch_size):
            if result.steps >= total_steps:
                break
            if time_limit is not None and time.monotonic() - start >= time_limit:
                result.stopped = f"time limit of {time_limit / 60:g} min reached"
                break
            if feedback.is_cancelled():
                raise CancelledError(f"{label} cancelled by the user")
            idx = order[first : first + recipe.batch_size]
            loss, metrics = step(idx, result.steps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            result.steps += 1
            for key, value in {"loss": loss.item(), **metrics}.items():
                sums[key] = sums.get(key, 0.0) + value * len(idx)
            seen += len(idx)
            _report(feedback, result.steps / total_steps, epoch, recipe.epochs, sums, seen)
        if seen:
            row = {"epoch": epoch + 1, **{k: v / seen for k, v in sums.items()}}
            row["learning_rate"] = optimizer.param_groups[0]["lr"]
            if epoch_end is not None:
                values, stop = epoch_end(epoch)
                row.update(values)
                model.train()
                if stop:
                    result.stopped = result.stopped or f"early stopping after epoch {epoch + 1}"
            row["seconds"] = time.monotonic() - start
            result.history.append(row)
        scheduler.step()
        result.seconds = time.monotonic() - start
        if state_path is not None and seen == num_samples:
            _save(state_path, recipe, model, optimizer, scheduler, order_rng, result, epoch + 1)
    feedback.set_progress(1.0)
    result.seconds = time.monotonic() - start
    model.eval()
    return result


def make_optimizer(params: Any, recipe: LoopRecipe) -> torch.optim.Optimizer:
    """Adam, or SGD with momentum for a recipe whose ``optimizer`` is ``sgd``."""
    if getattr(recipe, "optimizer", "adam") == "sgd":
        return torch.optim.SGD(
            params,
            lr=recipe.learning_rate,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
        )
    return torch.optim.Adam(params, lr=recipe.learning_rate, weight_decay=recipe.weight_decay)


def _report(
    feedback: Feedback, fraction: float, epoch: int, epochs: int, sums: dict, seen: int
) -> None:
    loss = sums["loss"] / seen
    report_loss = getattr(feedback, "report_loss", None)  # optional, see JsonLinesFeedback
    if callable(report_loss):
        report_loss(epoch + 1, epochs, loss)
    if isinstance(feedback, ProgressBar):
        feedback.set_progress(fraction, f"epoch {epoch + 1}/{epochs} loss {loss:.4f}")
    else:
        feedback.set_progress(fraction)


def same_recipe(stored: dict[str, Any], recipe: LoopRecipe, ignored: tuple[str, ...] = ()) -> bool:
    """``stored`` (a recipe's ``to_dict``, written by an earlier run) is ``recipe``, fields
    in ``ignored`` aside. A field added to the recipe since then matches when it keeps its
    default."""
    stored = {k: v for k, v in stored.items() if k not in ignored}
    current = {k: v for k, v in recipe.to_dict().items() if k not in ignored}
    defaults = _field_defaults(recipe)
    added = {k for k in current.keys() - stored.keys() if current[k] == defaults.get(k)}
    return stored == {k: v for k, v in current.items() if k not in added}


RESUMABLE_CHANGES = ("max_steps",)  # recipe fields a resumed run may change


def _field_defaults(recipe: LoopRecipe) -> dict[str, Any]:
    """Default values of a recipe dataclass's fields."""
    if not dataclasses.is_dataclass(recipe):
        return {}
    fields = dataclasses.fields(recipe)
    return {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}


def _save(
    path: Path,
    recipe: LoopRecipe,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    order_rng: np.random.Generator,
    result: FitResult,
    epochs_done: int,
) -> None:
    save_atomically(
        {
            "format": STATE_FORMAT,
            "recipe": recipe.to_dict(),
            "epochs_done": epochs_done,
            "steps": result.steps,
            "seconds": result.seconds,
            "history": result.history,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "order_rng": order_rng.bit_generator.state,
            "dropout_rng": dropout_rng_state(),
            "record": result.record,
        },
        path,
    )


def save_atomically(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to a hidden temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_weights_only(
    path: str | os.PathLike[str], file_format: str, what: str, failure: str | None = None
) -> dict[str, Any]:
    """The dict saved in ``path`` (``torch.save``), loaded without executing code; it must
    be a ``file_format`` file (``what``, for the message).

    Raises:
        ModelLoadError: in one line; ``failure`` starts the message when the file cannot be
            read (default ``cannot load PATH as weights only``).
    """
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        failure = failure or f"cannot load {path} as weights only"
        raise ModelLoadError(f"{failure}: {_unpickling_reason(exc)}") from None
    if not isinstance(data, dict) or data.get("format") != file_format:
        raise ModelLoadError(f"{path} is not a {what} ({file_format})")
    return data


def _unpickling_reason(exc: Exception) -> str:
    """The line of a ``torch.load`` error that says what is wrong: the unpickler's reason
    when there is one (not torch's advice to load without ``weights_only``), else the first."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for number, line in enumerate(lines):
        if "Unpickler error" in line:
            detail = line.split("Unpickler error", 1)[1].strip(" :")
            if not detail and number + 1 < len(lines):
                detail = lines[number + 1]
            return f"unpickler error: {detail}" if detail else line
    return lines[0] if lines else type(exc).__name__


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A saved training state (``save_atomically``'s payload); ModelLoadError if it is not one."""
    return load_weights_only(path, STATE_FORMAT, "training state", f"cannot resume from {path}")


def _restore(
    path: Path,
    recipe: LoopRecipe,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    order_rng: np.random.Generator,
    result: FitResult,
) -> int:
    """Load a saved state into the run's objects; returns the number of epochs done."""
    state = load_state(path)
    if not same_recipe(state["recipe"], recipe, RESUMABLE_CHANGES):
        raise InputDataError(
            f"cannot resume from {path}: it was written with another recipe "
            f"({state['recipe']}); use a new output folder or the same options"
        )
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:  # torch's first line says only "Error(s) in loading ..."
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else first_line(exc)
        raise InputDataError(
            f"cannot resume from {path}: it holds another model (started with other "
            f"options, e.g. --patch-size, or on other bands): {detail}"
        ) from None
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    order_rng.bit_generator.state = state["order_rng"]
    set_dropout_rng_state(state["dropout_rng"])
    result.history = list(state["history"])
    result.steps = int(state["steps"])
    result.seconds = float(state["seconds"])
    if "record" in state:
        result.record = state["record"]
    return int(state["epochs_done"])
