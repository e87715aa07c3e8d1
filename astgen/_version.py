"""The version of astgen, from one place: `pyproject.toml`.

Installed, it is the distribution's metadata (written from pyproject.toml);
run from a checkout that was never installed, pyproject.toml itself.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path


def _version() -> str:
    try:
        return importlib.metadata.version("astgen")
    except importlib.metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        if not pyproject.is_file():
            return "0+unknown"
        return str(tomllib.loads(pyproject.read_text())["project"]["version"])


__version__ = _version()
