"""Deterministic, resumable training and evaluation on in-memory tensors, with hooks for sparsity and QAT.

`fit` is the one training loop of `models/`: periodic masks, pattern pruning (ADMM penalty and dual
updates, mask re-application), unstructured pruning and quantization-aware training all plug into
it through `TrainHook`s instead of carrying their own loops. `FitOptions` say how it trains
(optimizer, learning-rate schedule, augmentation, batch size, device, threads). Same seed, same
data, same hooks -> bit-identical weights: the loop seeds torch, shuffles and augments with its own
generator, asks torch for deterministic kernels and runs with a fixed thread count (the thread
count changes float summation order).

Inside `checkpointing(DIR)` every `fit` call saves its whole state (model, optimizer, schedule,
generator, hooks) after every epoch to `DIR/fitNN-<desc>.pt`; rerunning the same pipeline in the
same directory skips finished calls and resumes the unfinished one where it stopped, so a resumed
run ends with the same weights, bit for bit, as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hwgen.errors import HwgenError

OPTIMIZERS = ("adamw", "sgd")
AUGMENTATIONS = ("none", "crop-flip")
CROP_PADDING = 4  # crop-flip: random crops of the image zero-padded by 4 pixels, as in CIFAR recipes


@dataclass
class Data:
    """A train/test split as torch tensors (images float32 (N, C, H, W), labels int64)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @classmethod
    def from_numpy(cls, x_train, y_train, x_test, y_test) -> "Data":
        return cls(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (x_train, y_train, x_test, y_test)))

    @classmethod
    def digits(cls) -> "Data":
        from hwgen.datasets import load_digits_split

        return cls.from_numpy(*load_digits_split())

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


@dataclass(frozen=True)
class FitOptions:
    """How `fit` trains, apart from the epochs, learning rate and seed of a phase.

    `milestones` are fractions of the epochs at which a multi-step schedule multiplies the learning
    rate by `gamma` (empty: cosine annealing to 0 over the phase). `device` None picks cuda when
    present.
    """

    optimizer: str = "adamw"
    momentum: float = 0.9  # sgd
    weight_decay: float = 1e-4
    milestones: tuple[float, ...] = ()
    gamma: float = 0.2
    batch_size: int = 64
    augment: str = "none"
    device: str | None = None
    threads: int = 1

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise HwgenError(f"unknown optimizer '{self.optimizer}' (choose from {', '.join(OPTIMIZERS)})")
        if self.augment not in AUGMENTATIONS:
            raise HwgenError(f"unknown augmentation '{self.augment}' (choose from {', '.join(AUGMENTATIONS)})")
        if self.batch_size < 1 or self.threads < 1:
            raise HwgenError(f"batch size and threads must be >= 1, got {self.batch_size} and {self.threads}")
        if not all(0 < m < 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise HwgenError(f"milestones must be increasing fractions of the epochs in (0, 1), got {self.milestones}")

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)


def resolve_device(name: str | None) -> torch.device:
    """`cuda` when present and not asked otherwise; asking for cuda without a GPU is an error."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise HwgenError(f"unknown device '{name}' (choose cpu or cuda)")
    if name == "cuda" and not torch.cuda.is_available():
        raise HwgenError("--device cuda: no CUDA device is available")
    return torch.device(name)


class TrainHook:
    """Extension points of `fit`; every method is optional (the defaults do nothing)."""

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """An extra term added to the loss of every batch (e.g. the ADMM augmented Lagrangian)."""
        return None

    def after_step(self, model: nn.Module) -> None:
        """Called after every optimizer step (e.g. re-zero pruned weights)."""

    def after_epoch(self, model: nn.Module, epoch: int) -> None:
        """Called after every epoch (e.g. the ADMM Z and U updates)."""

    def state_dict(self) -> dict:
        """The hook's state between epochs, saved in training checkpoints (tensors and lists of them)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()` when a run resumes."""


class MaskHook(TrainHook):
    """Keeps weights under fixed 0/1 masks: masks the gradients and re-zeroes after each step.

    `masks` maps a parameter-owning module (nn.Conv2d / nn.Linear) to a mask shaped like its weight.
    Re-zeroing after the step matters because Adam's moments and weight decay move weights whose
    gradient is zero.
    """

    def __init__(self, masks: dict):
        self.masks = {m: mask.to(m.weight.device) for m, mask in masks.items()}
        self._handles = [m.weight.register_hook(lambda g, mask=mask: g * mask) for m, mask in self.masks.items()]
        self.after_step(None)

    def after_step(self, model) -> None:
        with torch.no_grad():
            for module, mask in self.masks.items():
                module.weight.mul_(mask)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


class TrainingStopped(HwgenError):
    """Raised by `fit` when `checkpointing(stop_after_epochs=N)` has run its N epochs."""

    exit_code = 75  # EX_TEMPFAIL: nothing is wrong; run again to continue


class _Checkpointer:
    def __init__(self, directory: Path, stop_after_epochs: int | None):
        self.directory = directory
        self.stop_after = stop_after_epochs
        self.slot = 0
        self.epochs_run = 0

    def next_path(self, desc: str) -> Path:
        path = self.directory / f"fit{self.slot:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', desc)}.pt"
        self.slot += 1
        return path

    def epoch_done(self) -> None:
        self.epochs_run += 1
        if self.stop_after is not None and self.epochs_run >= self.stop_after:
            raise TrainingStopped(f"stopped after {self.epochs_run} epochs as asked; run the same command "
                                  f"again to resume from {self.directory}")


_checkpointer: _Checkpointer | None = None


@contextlib.contextmanager
def checkpointing(directory, stop_after_epochs: int | None = None):
    """Within the block, every `fit` saves after each epoch into `directory` and resumes from it.

    `stop_after_epochs` stops the run (raising `TrainingStopped`) once that many epochs have been
    trained in this block, after saving them: a time-sliced job, and the test of resuming.
    """
    global _checkpointer
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    previous, _checkpointer = _checkpointer, _Checkpointer(directory, stop_after_epochs)
    try:
        yield
    finally:
        _checkpointer = previous


def _save(state: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: an interrupted save never leaves a torn checkpoint


def _load(path: Path, device: torch.device) -> dict:
    try:  # weights_only: the restricted unpickler, which builds tensors and containers and runs no code
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read is one user-facing error
        raise HwgenError(f"{path}: unreadable training checkpoint ({type(e).__name__}); delete it to restart") from None


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """crop-flip: a random crop of the zero-padded image and a horizontal flip with probability 1/2."""
    if kind == "none":
        return x
    n, _, h, w = x.shape
    p = CROP_PADDING
    offsets = torch.randint(0, 2 * p + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    padded = nn.functional.pad(x, (p, p, p, p))
    out = torch.stack([padded[i, :, oy:oy + h, ox:ox + w] for i, (oy, ox) in enumerate(offsets.tolist())])
    return torch.where(flips.reshape(-1, 1, 1, 1).to(x.device), out.flip(3), out)


def fit(model: nn.Module, data: Data, epochs: int, lr: float = 3e-3, seed: int = 0, *,
        options: FitOptions = FitOptions(), masks: dict | None = None,
        hooks: tuple[TrainHook, ...] | list[TrainHook] = (), progress: bool = True,
        desc: str = "train") -> list[float]:
    """Train `model` (already on its device) in place; returns the mean loss per epoch.

    `masks` ({module: 0/1 mask}) are held fixed during this call (see `MaskHook`); `hooks` add loss
    terms and per-step / per-epoch actions; `options` choose the optimizer, schedule, augmentation.
    """
    from tqdm import tqdm

    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    device = next(model.parameters()).device
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(options.threads)
    # Some CUDA backward kernels (pooling) have no deterministic version; they warn instead of failing.
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    mask_hook = None
    try:
        seed_everything(seed)
        all_hooks = list(hooks)
        mask_hook = MaskHook(masks) if masks else None
        if mask_hook is not None:
            all_hooks.append(mask_hook)
        if options.optimizer == "sgd":
            optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=options.momentum,
                                        weight_decay=options.weight_decay)
        else:
            optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=options.weight_decay)
        steps_per_epoch = (len(data.x_train) + options.batch_size - 1) // options.batch_size
        if options.milestones:
            steps = sorted({round(f * epochs) * steps_per_epoch for f in options.milestones})
            schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, steps, options.gamma)
        else:
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, epochs * steps_per_epoch))
        shuffle = torch.Generator().manual_seed(seed)
        history: list[float] = []
        path = _checkpointer.next_path(desc) if _checkpointer is not None else None
        if path is not None and path.exists():
            state = _load(path, device)
            if state["epochs"] != epochs or state["desc"] != desc:
                raise HwgenError(f"{path}: saved by a different run ({state['desc']}, {state['epochs']} epochs); "
                                 "use a new checkpoint directory")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            shuffle.set_state(state["shuffle"])
            torch.set_rng_state(state["rng"])
            for h, s in zip(all_hooks, state["hooks"]):
                h.load_state_dict(s)
            history = list(state["history"])
        loss_fn = nn.CrossEntropyLoss()
        bar = tqdm(total=epochs * steps_per_epoch, initial=len(history) * steps_per_epoch, desc=desc,
                   disable=not progress, leave=False, unit="step")
        for epoch in range(len(history), epochs):
            model.train()
            order = torch.randperm(len(data.x_train), generator=shuffle)
            total = 0.0
            for i in range(0, len(order), options.batch_size):
                idx = order[i:i + options.batch_size]
                x = augment_batch(data.x_train[idx], options.augment, shuffle).to(device)
                loss = loss_fn(model(x), data.y_train[idx].to(device))
                for h in all_hooks:
                    extra = h.penalty(model)
                    if extra is not None:
                        loss = loss + extra
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                for h in all_hooks:
                    h.after_step(model)
                total += loss.item() * len(idx)
                bar.update(1)
            history.append(total / len(order))
            bar.set_postfix(loss=f"{history[-1]:.4f}")
            for h in all_hooks:
                h.after_epoch(model, epoch)
            if path is not None:
                _save({"desc": desc, "epochs": epochs, "history": history, "model": model.state_dict(),
                       "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                       "shuffle": shuffle.get_state(), "rng": torch.get_rng_state(),
                       "hooks": [h.state_dict() for h in all_hooks]}, path)
                _checkpointer.epoch_done()
        bar.close()
        model.eval()
        return history
    finally:
        if mask_hook is not None:
            mask_hook.remove()
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits of `model` in eval mode (on the model's device; returned on the CPU)."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy as a fraction in [0, 1]."""
    return float((predict(model, x).argmax(1) == y).double().mean())
