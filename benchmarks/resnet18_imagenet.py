"""ImageNet ResNet-18 (torchvision's shape: 7x7 stride-2 stem, 3x3 max pool, 224x224 input) for the
analysis benchmarks: models.zoo's "resnet18-imagenet" (torchvision is not a dependency).
"""

from __future__ import annotations

from pathlib import Path


def resnet18_imagenet(num_classes: int = 1000):
    from models.zoo import ResNet18

    return ResNet18(num_classes, stem="imagenet")


def export(path: Path, periodic_scheme: str | None = None) -> Path:
    """Export (seed 0, random weights) as .pt2; optionally with a periodic scheme on its 3x3 convs."""
    import torch

    from models.periodic import apply_periodic
    from models.zoo import export_pt2

    torch.manual_seed(0)
    model = resnet18_imagenet()
    if periodic_scheme:
        apply_periodic(model, periodic_scheme)
    export_pt2(model, (3, 224, 224), path)
    return path
