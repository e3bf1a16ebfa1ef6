"""Reading TOML input files with errors that name the file, line and column.

Besides TOML syntax, the file must be a regular file of UTF-8 text (not compressed, not binary) of
at most :data:`~sim.core.limits.MAX_FILE_BYTES`; its numbers must be finite floats and integers that
fit in 64 bits (the TOML specification's range), each refusal naming the key path.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from sim.core.errors import ConfigError
from sim.core.textfile import check_values, read_text

EXPECTED = "a UTF-8 TOML file"


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; syntax errors name the file, line and column."""
    where = str(path)
    text = read_text(Path(path), EXPECTED)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML: {exc}", where=where) from None
    except RecursionError:
        raise ConfigError("expected TOML, found arrays or tables nested too deeply", where=where) from None
    check_values(data, where)
    return data
