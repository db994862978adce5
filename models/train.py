"""Deterministic training and evaluation on in-memory tensors, with hooks for sparsity and QAT.

`fit` is the one training loop of `models/`: periodic masks, pattern pruning (ADMM penalty and dual
updates, mask re-application), unstructured pruning and quantization-aware training all plug into
it through `TrainHook`s instead of carrying their own loops. Same seed, same data, same hooks ->
bit-identical weights: the loop seeds torch, shuffles with its own generator, asks torch for
deterministic kernels and runs single-threaded (thread count changes float summation order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


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


class TrainHook:
    """Extension points of `fit`; every method is optional (the defaults do nothing)."""

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """An extra term added to the loss of every batch (e.g. the ADMM augmented Lagrangian)."""
        return None

    def after_step(self, model: nn.Module) -> None:
        """Called after every optimizer step (e.g. re-zero pruned weights)."""

    def after_epoch(self, model: nn.Module, epoch: int) -> None:
        """Called after every epoch (e.g. the ADMM Z and U updates)."""


class MaskHook(TrainHook):
    """Keeps weights under fixed 0/1 masks: masks the gradients and re-zeroes after each step.

    `masks` maps a parameter-owning module (nn.Conv2d / nn.Linear) to a mask shaped like its weight.
    Re-zeroing after the step matters because Adam's moments and weight decay move weights whose
    gradient is zero.
    """

    def __init__(self, masks: dict):
        self.masks = masks
        self._handles = [m.weight.register_hook(lambda g, mask=mask: g * mask) for m, mask in masks.items()]
        self.after_step(None)

    def after_step(self, model) -> None:
        with torch.no_grad():
            for module, mask in self.masks.items():
                module.weight.mul_(mask)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def fit(model: nn.Module, data: Data, epochs: int, lr: float = 3e-3, seed: int = 0, *,
        batch_size: int = 64, weight_decay: float = 1e-4, masks: dict | None = None,
        hooks: tuple[TrainHook, ...] | list[TrainHook] = (), progress: bool = True,
        desc: str = "train") -> list[float]:
    """Train `model` in place with Adam and a cosine learning rate; returns the mean loss per epoch.

    `masks` ({module: 0/1 mask}) are held fixed during this call (see `MaskHook`); `hooks` add loss
    terms and per-step / per-epoch actions.
    """
    from tqdm import tqdm

    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        seed_everything(seed)
        all_hooks = list(hooks)
        mask_hook = MaskHook(masks) if masks else None
        if mask_hook is not None:
            all_hooks.append(mask_hook)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        steps_per_epoch = (len(data.x_train) + batch_size - 1) // batch_size
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, epochs * steps_per_epoch))
        shuffle = torch.Generator().manual_seed(seed)
        loss_fn = nn.CrossEntropyLoss()
        history = []
        bar = tqdm(total=epochs * steps_per_epoch, desc=desc, disable=not progress, leave=False, unit="step")
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(data.x_train), generator=shuffle)
            total = 0.0
            for i in range(0, len(order), batch_size):
                idx = order[i:i + batch_size]
                loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
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
        bar.close()
        if mask_hook is not None:
            mask_hook.remove()
        model.eval()
        return history
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits of `model` in eval mode."""
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy as a fraction in [0, 1]."""
    return float((predict(model, x).argmax(1) == y).double().mean())
