"""Safe reading of a `torch.export.save` archive (`.pt2`): JSON and raw tensor bytes, no pickle.

A `.pt2` is a zip whose members live under one folder (the archive's stem):
  archive_format                               "pt2"
  archive_version                              "0" (absent in older archives)
  byteorder                                    "little" or "big"
  models/<model>.json                          the serialized program (graph, signature)
  data/weights/<model>_weights_config.json     parameter/buffer name -> raw file, dtype, sizes, strides
  data/weights/weight_<i>                      raw storage bytes (possibly shared by several tensors)
  data/constants/<model>_constants_config.json lifted tensor constants, same format
  data/sample_inputs/<model>.pt                a pickle: never read
`torch.export.load` unpickles; this reader only parses JSON and reinterprets bytes with numpy, and
checks every size, stride and byte count against the file before touching the data.
"""

from __future__ import annotations

import json
import posixpath
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import HwgenError

# torch._export.serde.schema.ScalarType -> numpy type (without byte order); the float types are
# the ones weights can use, the integer types appear in buffers such as num_batches_tracked.
_DTYPES = {1: "u1", 2: "i1", 3: "i2", 4: "i4", 5: "i8", 6: "f2", 7: "f4", 8: "f8", 12: "b1", 13: "bf16"}
_FLOAT_DTYPES = {6, 7, 8, 13}
_STRIDED_LAYOUT = 7
KNOWN_ARCHIVE_VERSIONS = ("0",)
MAX_JSON_BYTES = 256 << 20  # a program description, not data: anything larger is not a real export


class Pt2Archive:
    """The members of one `.pt2` file, read on demand; every malformation is a `HwgenError`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
            names = self._zip.namelist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise HwgenError(f"{self.path}: not a readable .pt2 archive ({e})") from None
        self._names = set(names)
        formats = [n for n in names if posixpath.basename(n) == "archive_format" and n.count("/") <= 1]
        if len(formats) != 1:
            raise HwgenError(f"{self.path}: not a torch.export archive (no archive_format member)")
        self.root = formats[0][: -len("archive_format")]
        if self.text("archive_format").strip() != "pt2":
            raise HwgenError(f"{self.path}: archive_format is not 'pt2'")
        # torch writes "0", the only version of the archive spec there is; older archives have none.
        version = self.text("archive_version").strip() if self.root + "archive_version" in self._names else "0"
        if version not in KNOWN_ARCHIVE_VERSIONS:
            raise HwgenError(f"{self.path}: unknown archive_version {version[:20]!r} (hwgen reads "
                             f"{', '.join(KNOWN_ARCHIVE_VERSIONS)})")
        order = self.text("byteorder").strip() if self.root + "byteorder" in self._names else "little"
        if order not in ("little", "big"):
            raise HwgenError(f"{self.path}: unknown byteorder '{order[:20]}'")
        self._endian = "<" if order == "little" else ">"
        models = sorted(n for n in names if n.startswith(self.root + "models/") and n.endswith(".json"))
        if not models:
            raise HwgenError(f"{self.path}: the archive holds no program (models/*.json)")
        if len(models) > 1:
            raise HwgenError(f"{self.path}: the archive holds {len(models)} programs; hwgen reads archives with one")
        self.model_name = posixpath.basename(models[0])[: -len(".json")]
        self._program_member = models[0][len(self.root):]
        self._storage: dict[str, bytes] = {}
        self._configs: dict[str, dict] = {}

    # -- members ----------------------------------------------------------------------------------
    def read(self, member: str) -> bytes:
        name = self.root + member
        if name not in self._names:
            raise HwgenError(f"{self.path}: archive member '{member}' is missing")
        try:
            return self._zip.read(name)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as e:
            # NotImplementedError: an unknown compression method; RuntimeError: an encrypted member
            raise HwgenError(f"{self.path}: archive member '{member}' is corrupt ({e})") from None

    def text(self, member: str) -> str:
        try:
            return self.read(member).decode("utf-8")
        except UnicodeDecodeError:
            raise HwgenError(f"{self.path}: archive member '{member}' is not UTF-8 text") from None

    def json(self, member: str) -> dict:
        name = self.root + member
        if name in self._names and self._zip.getinfo(name).file_size > MAX_JSON_BYTES:
            raise HwgenError(f"{self.path}: archive member '{member}' is too large for a program description")
        try:
            doc = json.loads(self.text(member))
        except (json.JSONDecodeError, RecursionError) as e:
            raise HwgenError(f"{self.path}: archive member '{member}' is not valid JSON ({e})") from None
        if not isinstance(doc, dict):
            raise HwgenError(f"{self.path}: archive member '{member}' is not a JSON object")
        return doc

    def program(self) -> dict:
        """The serialized `ExportedProgram` (torch._export.serde.schema, as JSON)."""
        return self.json(self._program_member)

    # -- tensors ----------------------------------------------------------------------------------
    def _config(self, kind: str) -> dict:
        """Payload configs: kind is 'weights' or 'constants'."""
        if kind not in self._configs:
            member = f"data/{kind}/{self.model_name}_{kind}_config.json"
            if self.root + member not in self._names:
                self._configs[kind] = {}
            else:
                config = self.json(member).get("config")
                if not isinstance(config, dict):
                    raise HwgenError(f"{self.path}: '{member}' has no 'config' object")
                self._configs[kind] = config
        return self._configs[kind]

    def tensor(self, kind: str, fqn: str) -> np.ndarray:
        """The float tensor `fqn` (e.g. 'features.0.weight') as a float32 array, checked finite."""
        meta = self._config(kind).get(fqn)
        if not isinstance(meta, dict):
            raise HwgenError(f"{self.path}: tensor '{fqn}' is not in the archive's {kind} config")
        if meta.get("use_pickle"):
            raise HwgenError(f"{self.path}: tensor '{fqn}' is stored as a pickle; hwgen never unpickles")
        tm = meta.get("tensor_meta")
        if not isinstance(tm, dict):
            raise HwgenError(f"{self.path}: tensor '{fqn}' has no tensor_meta")
        dtype = tm.get("dtype")
        if dtype not in _FLOAT_DTYPES:
            raise HwgenError(f"{self.path}: tensor '{fqn}' has dtype code {dtype!r}; hwgen reads float tensors")
        if tm.get("layout", _STRIDED_LAYOUT) != _STRIDED_LAYOUT:
            raise HwgenError(f"{self.path}: tensor '{fqn}' is not a dense (strided) tensor")
        sizes = [_concrete_int(s, fqn, "size", self.path) for s in tm.get("sizes", [])]
        strides = [_concrete_int(s, fqn, "stride", self.path) for s in tm.get("strides", [])]
        offset = _concrete_int(tm.get("storage_offset", {"as_int": 0}), fqn, "storage offset", self.path)
        if len(strides) != len(sizes) or any(v < 0 for v in (*sizes, *strides, offset)):
            raise HwgenError(f"{self.path}: tensor '{fqn}' has inconsistent sizes {sizes} / strides {strides}")
        path_name = meta.get("path_name")
        if not isinstance(path_name, str) or "/" in path_name or path_name in ("", ".", ".."):
            raise HwgenError(f"{self.path}: tensor '{fqn}' has a bad path_name {path_name!r}")
        member = f"data/{kind}/{path_name}"
        if member not in self._storage:
            self._storage[member] = self.read(member)
        raw = self._storage[member]
        itemsize = 2 if dtype == 13 else np.dtype(_DTYPES[dtype]).itemsize
        if len(raw) % itemsize:
            raise HwgenError(f"{self.path}: '{member}' holds {len(raw)} bytes, not a whole number of elements")
        count = len(raw) // itemsize
        if 0 not in sizes:
            last = offset + sum((n - 1) * s for n, s in zip(sizes, strides))
            # A real weight never has more elements than its storage; a hostile config with zero
            # strides could otherwise ask for an arbitrarily large copy.
            if last >= count or int(np.prod(sizes, dtype=object)) > count:
                raise HwgenError(f"{self.path}: tensor '{fqn}' of shape {tuple(sizes)} needs more than the "
                                 f"{len(raw)} bytes of '{member}'")
        flat = _decode(raw, dtype, self._endian)
        arr = np.lib.stride_tricks.as_strided(flat[offset:] if count else flat, shape=sizes,
                                              strides=[s * 4 for s in strides], writeable=False)
        arr = np.array(arr, dtype=np.float32, copy=True)
        if not np.isfinite(arr).all():
            raise HwgenError(f"{self.path}: tensor '{fqn}' contains NaN or infinite values")
        return arr


def _decode(raw: bytes, dtype: int, endian: str) -> np.ndarray:
    """The flat storage as float32 (bfloat16 is the upper half of a float32)."""
    if dtype == 13:
        bits = np.frombuffer(raw, dtype=endian + "u2").astype(np.uint32) << 16
        return bits.view(np.float32)
    return np.frombuffer(raw, dtype=endian + _DTYPES[dtype]).astype(np.float32)


def _concrete_int(v, fqn: str, what: str, path: Path) -> int:
    if isinstance(v, dict) and isinstance(v.get("as_int"), int):
        return int(v["as_int"])
    raise HwgenError(f"{path}: tensor '{fqn}' has a symbolic or malformed {what}")
