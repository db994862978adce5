"""The Verilog templates the generator fills (`hwgen/rtl_templates/`, linked as `rtl_templates/`).

They are package data, so an installed wheel reads them the same way as a source checkout.
"""

from __future__ import annotations

import string
from importlib import resources


def text(name: str) -> str:
    """The template file `name` (e.g. "hwgen_top.v") as it is."""
    return (resources.files("hwgen") / "rtl_templates" / name).read_text(encoding="utf-8")


def fill(name: str, **values) -> str:
    """The template `name` with its `${NAME}` placeholders substituted."""
    return string.Template(text(name)).substitute(**values)
