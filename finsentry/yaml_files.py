"""Reading the project's small YAML files (price list, table mappings) with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_yaml(path: Path, error: type[Exception], missing: str) -> Any:
    """The parsed content of ``path``; ``error`` (the caller's exception type) with the message
    ``missing`` when there is no such file, or naming the YAML error when it does not parse."""
    if not path.is_file():
        raise error(missing)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise error(f"{path.name}: not valid YAML: {err}") from err
