"""MAC and parameter reductions of pre-defined periodic sparsity, from the architecture alone.

The pSConv paper ("Pre-defined Sparsity for Low-Complexity CNNs", IEEE Trans. Computers 69(7),
2020) reports for PSD1_P16: ResNet-18 on CIFAR-10 about 5.6x fewer MACs (0.56 G -> 0.10 G) and
about 82% fewer parameters; VGG-16 on 64x64 Tiny ImageNet about 5.8x fewer MACs (1.25 G ->
0.215 G). This script builds the models of models/zoo.py with random weights, applies the
scheme's masks, exports them, and lets `hwgen analyze` count dense and effectual MACs and the
weights moved in the periodic format. Usage: python benchmarks/paper_macs.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

# model -> (paper dense G MACs, paper sparse G MACs, paper parameter reduction or None)
PAPER = {
    "resnet18-cifar": (0.56, 0.10, 0.82),
    "vgg16-tiny": (1.25, 0.215, None),
}
SCHEME = "PSD1_P16"


def main() -> int:
    import torch

    from hwgen.analysis import analyze
    from hwgen.ingest import load_model
    from models.periodic import apply_periodic
    from models.zoo import build, export_pt2

    print(f"{SCHEME}: MACs and weights from the architecture and the masks alone (weights random)")
    head = (f"{'model':<16} {'dense GMAC':>10} {'paper':>6} {'sparse GMAC':>11} {'paper':>6} {'reduction':>9} "
            f"{'paper':>6} {'params -':>8} {'paper':>6} {'periodic bits / (nnz*W)':>24}")
    print(head)
    print("-" * len(head))
    for name, (p_dense, p_sparse, p_params) in PAPER.items():
        torch.manual_seed(0)
        model, shape = build(name)
        apply_periodic(model, SCHEME)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.pt2"
            export_pt2(model, shape, path)
            result = analyze(load_model(path))
        t = result.totals
        dense, sparse = t["macs"] / 1e9, t["effectual_macs"] / 1e9
        weights = sum(r.layer.n_weights for r in result.layers)
        nonzeros = sum(r.layer.nonzeros for r in result.layers)
        periodic = [r for r in result.layers if r.format == "periodic"]
        overhead = max(r.storage["periodic"].bits / (r.layer.nonzeros * r.layer.weight_bits) for r in periodic)
        print(f"{name:<16} {dense:>10.3f} {p_dense:>6.2f} {sparse:>11.3f} {p_sparse:>6.3f} {dense / sparse:>8.2f}x "
              f"{p_dense / p_sparse:>5.1f}x {1 - nonzeros / weights:>8.1%} "
              f"{('-' if p_params is None else f'{p_params:.0%}'):>6} {overhead:>24.4f}")
    print("params -: fraction of conv/linear weights removed (biases and batch norm not counted)")
    print("last column: the worst layer's periodic-format bits over nonzeros x W (the issue allows 1.01)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
