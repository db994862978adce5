"""Loading the analysis' YAML files (architectures, energy tables, mappings) with one-line errors.

A spec is a preset name (a file shipped in hwgen/data/<kind>/) or a path to a user's YAML file.
Every check names the file and the dotted key at fault, so a user can fix it without a traceback.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from ..errors import HwgenError


def presets(kind: str) -> list[str]:
    folder = resources.files("hwgen") / "data" / kind
    if not folder.is_dir():
        return []
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load(spec: str, kind: str) -> tuple[dict, str]:
    """(mapping, label) of preset `spec` of `kind` ('arch', 'energy') or of the YAML file `spec`."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise HwgenError(f"{kind} file '{spec}' does not exist")
        text, label = path.read_text(encoding="utf-8", errors="replace"), str(path)
    elif spec in presets(kind):
        text, label = (resources.files("hwgen") / "data" / kind / f"{spec}.yaml").read_text(encoding="utf-8"), spec
    else:
        raise HwgenError(f"unknown {kind} '{spec}' (presets: {', '.join(presets(kind))}; or a YAML file)")
    return parse(text, label), label


def parse(text: str, label: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise HwgenError(f"{label}: not valid YAML{line}") from None
    if not isinstance(data, dict):
        raise HwgenError(f"{label}: expected a mapping of keys at the top level")
    return data


class Section:
    """A mapping being validated: typed getters, and a check that no unknown key is left."""

    def __init__(self, data, label: str, path: str = ""):
        if not isinstance(data, dict):
            raise HwgenError(f"{label}: '{path}' must be a mapping of keys")
        self.data, self.label, self.path = data, label, path
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _raw(self, key: str, default):
        self.used.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise HwgenError(f"{self.label}: missing key '{self._key(key)}'")
            return default
        return self.data[key]

    def number(self, key: str, default=None, *, positive: bool = True, integer: bool = False):
        v = self._raw(key, _REQUIRED if default is None else default)
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok or (positive and not v > 0) or (not positive and v < 0):
            what = "integer" if integer else "number"
            raise HwgenError(f"{self.label}: '{self._key(key)}' must be a {'positive' if positive else 'non-negative'} {what}, got {v!r}")
        return v

    def integers(self, key: str) -> tuple[int, ...]:
        """A list of positive integers (empty if the key is absent), sorted."""
        v = self._raw(key, [])
        if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v):
            raise HwgenError(f"{self.label}: '{self._key(key)}' must be a list of positive integers, got {v!r}")
        return tuple(sorted(v))

    def text(self, key: str, default=None) -> str:
        v = self._raw(key, _REQUIRED if default is None else default)
        if not isinstance(v, str) or not v:
            raise HwgenError(f"{self.label}: '{self._key(key)}' must be a non-empty string, got {v!r}")
        return v

    def section(self, key: str, optional: bool = False) -> "Section | None":
        if optional and key not in self.data:
            self.used.add(key)
            return None
        return Section(self._raw(key, _REQUIRED), self.label, self._key(key))

    def get(self, key: str, default=None):
        return self._raw(key, default)

    def done(self) -> None:
        extra = sorted(set(map(str, self.data)) - self.used)
        if extra:
            raise HwgenError(f"{self.label}: unknown key '{self._key(extra[0])}'")


_REQUIRED = object()
