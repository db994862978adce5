"""ImageNet ResNet-18 (torchvision's shape: 7x7 stride-2 stem, 3x3 max pool, 224x224 input) for the
analysis benchmarks. torchvision is not a dependency, so it is assembled from models.zoo's blocks.
"""

from __future__ import annotations

from pathlib import Path


def resnet18_imagenet(num_classes: int = 1000):
    import torch
    from torch import nn

    from models.zoo import BasicBlock

    class ResNet18ImageNet(nn.Module):
        def __init__(self):
            super().__init__()
            layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
            cin = 64
            for i, cout in enumerate((64, 128, 256, 512)):
                for j in range(2):
                    layers.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                    cin = cout
            self.features = nn.Sequential(*layers)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Linear(512, num_classes)

        def forward(self, x):
            return self.classifier(torch.flatten(self.pool(self.features(x)), 1))

    return ResNet18ImageNet()


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
