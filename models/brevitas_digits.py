"""A Brevitas QAT twin of `DigitsCNN`, its QONNX / QDQ exports, and the oracles that run them.

This is how a FINN or Brevitas user builds a quantized model; hwgen reads the exported file
(`hwgen.ingest.qonnx`) and must agree with the framework's own executors:
  - `run_qonnx`: qonnx's `execute_onnx` (after `cleanup_model`), for QONNX files;
  - `run_onnxruntime`: onnxruntime, for QDQ files.
The network: an 8-bit signed input quantizer, four 3x3 `QuantConv2d` (4-bit weights, one scale
per tensor, int32 biases) each followed by an unsigned 8-bit `QuantReLU`, two max pools and a
`QuantLinear` classifier. `pow2=True` restricts every learned scale to a power of two (Brevitas's
`...FixedPoint` quantizers, FINN's usual choice); `pow2=False` learns float scales.
Brevitas, qonnx and onnxruntime are test dependencies (requirements.txt), imported here only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn


class BrevitasDigitsCNN(nn.Module):
    def __init__(self, pow2: bool = True, weight_bits: int = 4, act_bits: int = 8,
                 widths: tuple[int, ...] = (16, 32, 32, 64), num_classes: int = 10):
        import brevitas.nn as qnn
        from brevitas import quant

        super().__init__()
        if pow2:
            w_q, in_q, act_q = quant.Int8WeightPerTensorFixedPoint, quant.Int8ActPerTensorFixedPoint, \
                quant.Uint8ActPerTensorFixedPoint
        else:
            w_q, in_q, act_q = quant.Int8WeightPerTensorFloat, quant.Int8ActPerTensorFloat, \
                quant.Uint8ActPerTensorFloat

        def conv(c_in, c_out):
            return [qnn.QuantConv2d(c_in, c_out, 3, padding=1, weight_quant=w_q, weight_bit_width=weight_bits,
                                    bias=True, bias_quant=quant.Int32Bias, return_quant_tensor=True),
                    qnn.QuantReLU(act_quant=act_q, bit_width=act_bits, return_quant_tensor=True)]

        c1, c2, c3, c4 = widths
        self.inp = qnn.QuantIdentity(act_quant=in_q, bit_width=8, return_quant_tensor=True)
        self.features = nn.Sequential(*conv(1, c1), *conv(c1, c2), nn.MaxPool2d(2),
                                      *conv(c2, c3), *conv(c3, c4), nn.MaxPool2d(2))
        self.classifier = qnn.QuantLinear(c4 * 2 * 2, num_classes, weight_quant=w_q, weight_bit_width=weight_bits,
                                          bias=True, bias_quant=quant.Int32Bias)

    def forward(self, x):
        return self.classifier(self.features(self.inp(x)).flatten(1))


def build(pow2: bool = True, scheme: str | None = "PS4_P4", seed: int = 0, **kw) -> tuple[BrevitasDigitsCNN, dict]:
    """The network with periodic masks applied (`models.periodic`); returns (model, masks)."""
    import torch

    from .periodic import apply_periodic

    torch.manual_seed(seed)
    model = BrevitasDigitsCNN(pow2=pow2, **kw)
    masks = apply_periodic(model, scheme) if scheme else {}
    return model, masks


def train(model, masks: dict, epochs: int, lr: float = 1e-2, seed: int = 0, progress: bool = False) -> None:
    """QAT on the digits training split (models.train.fit), masks held."""
    from .train import Data, fit

    fit(model, Data.digits(), epochs, lr=lr, seed=seed, masks=masks or None, progress=progress,
        desc="brevitas qat")
    model.eval()


def export(model, path, fmt: str = "qonnx") -> Path:
    """`export_qonnx` or `export_onnx_qcdq` with the TorchScript exporter (the dynamo one refuses
    quantized biases in QCDQ), for one (1, 1, 8, 8) input."""
    import torch
    from brevitas.export import export_onnx_qcdq, export_qonnx

    exporter = {"qonnx": export_qonnx, "qcdq": export_onnx_qcdq}[fmt]
    model.eval()
    exporter(model, torch.zeros(1, 1, 8, 8), str(path), dynamo=False)
    return Path(path)


def cleanup(path, out) -> Path:
    """`qonnx-cleanup` (shape inference, constant folding, unique node names) of a QONNX file."""
    from qonnx.util.cleanup import cleanup

    cleanup(str(path), out_file=str(out))
    return Path(out)


def run_qonnx(path, x: np.ndarray, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """qonnx's executor on each image of `x`: the graph output (key "output") and the named tensors."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    model = ModelWrapper(str(path)).transform(InferShapes())  # keeps the file's tensor names
    inp, out = model.graph.input[0].name, model.graph.output[0].name
    keep = {"output": out, **{n: n for n in names or []}}
    rows = {k: [] for k in keep}
    for i in range(len(x)):
        ctx = execute_onnx(model, {inp: np.ascontiguousarray(x[i:i + 1], dtype=np.float32)},
                           return_full_exec_context=bool(names))
        for k, t in keep.items():
            rows[k].append(ctx[t])
    return {k: np.concatenate(v) for k, v in rows.items()}


def run_onnxruntime(path, x: np.ndarray) -> np.ndarray:
    """onnxruntime on each image of `x` (the export fixes the batch at one)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: np.ascontiguousarray(x[i:i + 1], dtype=np.float32)})[0]
                           for i in range(len(x))])


def layer_lsb_diffs(graph, tensors: dict[str, str], oracle: dict[str, np.ndarray]) -> dict[str, int]:
    """Per requantized layer, the largest |hwgen - model| of its output integers when both are fed
    the model's own input to that layer (so differences do not accumulate from layer to layer).

    `tensors` maps IR nodes to ONNX tensors (`hwgen.ingest.qonnx.load_quantized(..., tensors=)`),
    `oracle` holds those tensors as the model's executor computed them.
    """
    from hwgen import reference

    def ints(name):
        return np.round(oracle[tensors[name]].astype(np.float64) / graph.node(name).quant.out_scale).astype(np.int64)

    out = {}
    for node in graph.layers():
        if node.name not in tensors:  # the classifier's raw logits are compared by the caller
            continue
        chain = [node.inputs[0]]  # back to the nearest node whose output the model quantized
        while chain[-1] not in tensors:
            chain.append(graph.node(chain[-1]).inputs[0])
        x = ints(chain[-1])
        for name in reversed(chain[:-1]):  # max pools, flatten: integers moved exactly
            x = reference.run_layer(graph, name, x)
        out[node.name] = int(np.abs(reference.run_layer(graph, node.name, x) - ints(node.name)).max(initial=0))
    return out
