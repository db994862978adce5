"""Model definitions: ResNet-18 (CIFAR and ImageNet stems), VGG-16, and a small digits CNN.

Convolutions carry no bias and are followed by batch norm, as in the papers; hwgen folds the batch
norm into the convolution at ingestion. Every model exports with `torch.export` (see `export_pt2`).
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(*conv_bn(cin, cout, 3, stride), nn.ReLU(), *conv_bn(cout, cout, 3, 1))
        self.shortcut = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 with the CIFAR stem (3x3, stride 1, no max pool), for 32x32 or 64x64 inputs, or with
    `stem="imagenet"` torchvision's (7x7 stride 2, 3x3 max pool stride 2), for 224x224."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 64, stem: str = "cifar"):
        super().__init__()
        w = width
        if stem == "imagenet":
            layers = [*conv_bn(in_channels, w, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
        else:
            layers = [*conv_bn(in_channels, w, 3, 1), nn.ReLU()]
        cin = w
        for i, cout in enumerate((w, 2 * w, 4 * w, 8 * w)):
            for j in range(2):
                layers.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """VGG-16 with batch norm; for 64x64 Tiny ImageNet the last pool leaves 512 x 2 x 2.

    `width` is the channel count of the first layer (64 in the paper); every layer scales with it.
    """

    def __init__(self, num_classes: int = 200, in_channels: int = 3, image_size: int = 64, width: int = 64):
        super().__init__()
        layers, cin = [], in_channels
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [*conv_bn(cin, v * width // 64), nn.ReLU()]
                cin = v * width // 64
        self.features = nn.Sequential(*layers)
        side = image_size // 32
        self.classifier = nn.Sequential(nn.Linear(cin * side * side, cin), nn.ReLU(), nn.Linear(cin, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class DigitsCNN(nn.Module):
    """A small CNN for the 8x8 digits of scikit-learn: four 3x3 convolutions, two pools, a classifier."""

    def __init__(self, num_classes: int = 10, widths: tuple[int, ...] = (16, 32, 32, 64), in_channels: int = 1,
                 image_size: int = 8):
        super().__init__()
        c1, c2, c3, c4 = widths
        self.features = nn.Sequential(
            *conv_bn(in_channels, c1), nn.ReLU(),
            *conv_bn(c1, c2), nn.ReLU(),
            nn.MaxPool2d(2),
            *conv_bn(c2, c3), nn.ReLU(),
            *conv_bn(c3, c4), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(c4 * (image_size // 4) ** 2, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


# name -> (constructor, input shape (C, H, W))
MODELS = {
    "resnet18-cifar": (lambda: ResNet18(10), (3, 32, 32)),
    "resnet18-tiny": (lambda: ResNet18(200), (3, 64, 64)),
    "resnet18-imagenet": (lambda: ResNet18(1000, stem="imagenet"), (3, 224, 224)),
    "vgg16-tiny": (lambda: VGG16(200), (3, 64, 64)),
    "vgg16-imagenet": (lambda: VGG16(1000, image_size=224), (3, 224, 224)),
    "digits-cnn": (lambda: DigitsCNN(10), (1, 8, 8)),
}


# Short names the command line accepts as well.
ALIASES = {"vgg16": "vgg16-tiny", "digits": "digits-cnn"}


def build(name: str) -> tuple[nn.Module, tuple[int, int, int]]:
    ctor, shape = MODELS[name]
    return ctor(), shape


def canonical(name: str) -> str:
    """The zoo name of `name` (an alias or a zoo name)."""
    from hwgen.errors import HwgenError

    name = ALIASES.get(name, name)
    if name not in MODELS:
        raise HwgenError(f"unknown model '{name}' (choose from {', '.join(sorted(set(MODELS) | set(ALIASES)))})")
    return name


def make(name: str, num_classes: int, input_shape: tuple[int, int, int], width: int | None = None) -> nn.Module:
    """Architecture `name` for `num_classes` classes and (C, H, W) inputs, optionally narrower.

    `width` is the first stage's channel count (ResNet-18 and VGG-16: 64, the digits CNN: 16);
    every later stage scales with it, so `width=16` is a 16x cheaper ResNet-18 for quick runs.
    """
    from hwgen.errors import HwgenError

    name = canonical(name)
    c, h, w = input_shape
    if h != w:
        raise HwgenError(f"{name}: square images expected, got {h}x{w}")
    if width is not None and width < 1:
        raise HwgenError(f"width must be >= 1, got {width}")
    if name.startswith("resnet18"):
        stem, side = ("imagenet", 32) if name == "resnet18-imagenet" else ("cifar", 8)
        if h % side:
            raise HwgenError(f"{name}: image side must be a multiple of {side}, got {h}")
        return ResNet18(num_classes, c, width or 64, stem)
    if name.startswith("vgg16"):
        if h % 32:
            raise HwgenError(f"{name}: image side must be a multiple of 32, got {h}")
        return VGG16(num_classes, c, h, width or 64)
    if h % 4:
        raise HwgenError(f"{name}: image side must be a multiple of 4, got {h}")
    k = width or 16
    return DigitsCNN(num_classes, (k, 2 * k, 2 * k, 4 * k), c, h)


def export_pt2(model: nn.Module, input_shape: tuple[int, ...], path) -> None:
    """Save `model` (in eval mode) as a self-contained `torch.export` program."""
    model = model.eval()
    example = (torch.zeros(1, *input_shape),)
    program = torch.export.export(model, example)
    torch.export.save(program, str(path))
