"""Loading models into the hwgen IR, safely: nothing from a file is ever executed.

`load_model(path)` reads
  - a `torch.export.save` archive (`.pt2`), parsed from its JSON and raw tensor bytes
    (`hwgen.ingest.pt2`), with batch norm folded and nodes named after their modules;
  - an hwgen checkpoint (`.hwq`, `hwgen.checkpoint`; recognised by content under any name);
  - an ONNX model (`.onnx`, `hwgen.ingest.onnx`; protobuf, recognised by content under any name).
Pickled PyTorch checkpoints (`torch.save`: `.pt`, `.pth`, ...) are refused: unpickling runs code.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import HwgenError
from ..ir import Graph

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL_OPCODE = 0x80
# An ONNX ModelProto serializes field 1 (ir_version, a varint) first: tag byte 0x08.
_ONNX_FIRST_BYTE = 0x08
PICKLE_REFUSAL = ("is a pickled PyTorch checkpoint, which hwgen will not load (unpickling can run code); "
                  "export the model instead: torch.export.save(torch.export.export(model.eval(), "
                  "(example_input,)), 'model.pt2')")


def load_model(path: str | Path, input_shape: tuple[int, ...] | None = None) -> Graph:
    """The IR of the model in `path`, shapes propagated (`input_shape` overrides the file's)."""
    path = Path(path)
    if not path.is_file():
        raise HwgenError(f"{path}: no such file")
    if path.suffix.lower() == ".hwq":
        return _load_hwq(path, input_shape)
    with open(path, "rb") as f:
        head = f.read(4)
    if head == _ZIP_MAGIC:
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise HwgenError(f"{path}: not a readable .pt2 archive ({e})") from None
        if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            raise HwgenError(f"{path}: {PICKLE_REFUSAL}")
        if "graph.json" in names:  # an .hwq under another name
            return _load_hwq(path, input_shape)
        from .pt2 import load_pt2

        return load_pt2(path, input_shape)
    if head[:1] == bytes([_PICKLE_PROTOCOL_OPCODE]):
        raise HwgenError(f"{path}: {PICKLE_REFUSAL}")
    if path.suffix.lower() == ".onnx" or head[:1] == bytes([_ONNX_FIRST_BYTE]):
        from .onnx import load_onnx

        return load_onnx(path, input_shape)
    raise HwgenError(f"{path}: not a model hwgen can read (expected a torch.export .pt2 archive, an ONNX model "
                     "or an hwgen .hwq checkpoint)")


def _load_hwq(path: Path, input_shape) -> Graph:
    from ..checkpoint import load

    graph = load(path)
    return graph.infer_shapes(input_shape) if input_shape is not None else graph
