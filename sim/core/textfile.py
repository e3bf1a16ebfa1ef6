"""Reading text inputs safely: whole files (TOML, JSON) and line streams (CSV, JSON Lines).

Every failure is a :class:`~sim.core.errors.ConfigError` naming the file (and the line where there
is one) and saying what was expected and what was found, never the file's content:

* a missing file, a directory, a device or a pipe (a FIFO would block on open; ``/dev/zero`` never
  ends) instead of a regular file;
* compressed or binary bytes where text is expected (gzip, bzip2, xz, zstd, zip; NUL bytes), and
  bytes that are not UTF-8;
* a whole file beyond :data:`~sim.core.limits.MAX_FILE_BYTES`, a line beyond
  :data:`~sim.core.limits.MAX_LINE_BYTES` (refused as soon as the limit is passed, not read on);
* a gzip stream that is truncated or corrupt.

:func:`read_text` returns a whole file; :func:`text_lines` streams the lines of a plain or (where the
reader supports it) gzip-compressed file; :func:`check_values` refuses non-finite floats and
integers beyond 64 bits in parsed data, naming their key path; :func:`brief` shows a found value
without copying a long one into a message.
"""

from __future__ import annotations

import gzip
import math
import os
import stat
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from sim.core.errors import ConfigError
from sim.core.limits import MAX_FILE_BYTES, MAX_LINE_BYTES

GZIP_MAGIC = b"\x1f\x8b"

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (GZIP_MAGIC, "gzip-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "a zip archive"),
)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def sniff(head: bytes) -> str | None:
    """What the first bytes of a file show it is when it is not plain text, else None."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if head.startswith(b"BZh") and head[3:4].isdigit() and head[4:10] == b"1AY&SY":
        return "bzip2-compressed data"
    return None


def where_line(where: str, line: int, key: str | None = None) -> str:
    """``file: line N`` or ``file: line N: key``."""
    return f"{where}: line {line}: {key}" if key else f"{where}: line {line}"


def _size_text(n: int) -> str:
    return f"{n:,} bytes"


def open_regular(path: Path, where: str | None = None) -> BinaryIO:
    """``path`` opened for binary reading once it is known to be a regular file."""
    where = where or str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError("file not found", where=where) from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or "invalid path"
        raise ConfigError(f"cannot read file: {reason}", where=where) from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError("expected a file, found a directory", where=where)
    if not stat.S_ISREG(st.st_mode):
        kind = "a pipe" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
        raise ConfigError(f"expected a regular file, found {kind}", where=where)
    try:
        return open(path, "rb")  # the caller closes it
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or 'read error'}", where=where) from None


def read_text(path: Path, expected: str, *, where: str | None = None, limit: int | None = None) -> str:
    """The whole of ``path`` as UTF-8 text (a leading byte-order mark dropped).

    ``expected`` names the kind of file for messages: ``"a UTF-8 TOML file"``. A file larger than
    ``limit`` (default MAX_FILE_BYTES) is refused by its size, before any of it is read.
    """
    where = where or str(path)
    limit = MAX_FILE_BYTES if limit is None else limit
    too_large = ConfigError(
        f"expected {expected} of at most {_size_text(limit)} (MAX_FILE_BYTES), found a larger file",
        where=where,
    )
    with open_regular(path, where) as fh:
        if os.fstat(fh.fileno()).st_size > limit:
            raise too_large
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read file: {exc.strerror or 'read error'}", where=where) from None
    if len(data) > limit:
        raise too_large
    kind = sniff(data[:16])
    if kind is not None:
        raise ConfigError(f"expected {expected}, found {kind}", where=where)
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise ConfigError(
            f"expected {expected}, found binary data (a NUL byte)", where=where_line(where, line)
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"expected {expected}, found bytes that are not UTF-8", where=where_line(where, line)
        ) from None
    return text.removeprefix("\ufeff")


def text_lines(
    path: Path,
    expected: str,
    *,
    gzip_ok: bool = False,
    where: str | None = None,
    max_line_bytes: int | None = None,
    max_lines: int | None = None,
) -> Iterator[tuple[int, str]]:
    """(1-based line number, line text with its line end) for each line of ``path``.

    With ``gzip_ok`` a file starting with the gzip magic bytes is decompressed (whatever its name);
    other compressed or binary data is refused. A line longer than ``max_line_bytes`` is refused
    as soon as that many bytes are read, so an endless line ends the read rather than memory.
    ``max_lines`` (if given) bounds the lines read, blank ones included.
    """
    where = where or str(path)
    max_line_bytes = MAX_LINE_BYTES if max_line_bytes is None else max_line_bytes
    fh = open_regular(path, where)
    number = 0
    try:
        head = fh.read(16)
        fh.seek(0)
        kind = sniff(head)
        stream: BinaryIO = fh
        if kind == "gzip-compressed data" and gzip_ok:
            stream = gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[assignment]
        elif kind is not None:
            raise ConfigError(f"expected {expected}, found {kind}", where=where)
        while True:
            raw = stream.readline(max_line_bytes + 1)
            if not raw:
                return
            number += 1
            if max_lines is not None and number > max_lines:
                raise ConfigError(
                    f"expected at most {max_lines:,} lines, found more", where=where_line(where, number)
                )
            body = len(raw) - (1 if raw.endswith(b"\n") else 0)
            if body > max_line_bytes:
                raise ConfigError(
                    f"expected lines of at most {_size_text(max_line_bytes)} (MAX_LINE_BYTES), "
                    "found a longer line",
                    where=where_line(where, number),
                )
            if b"\x00" in raw:
                raise ConfigError(
                    f"expected {expected}, found binary data (a NUL byte)", where=where_line(where, number)
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ConfigError(
                    f"expected {expected}, found bytes that are not UTF-8", where=where_line(where, number)
                ) from None
            if number == 1:
                text = text.removeprefix("\ufeff")
            yield number, text
    except (EOFError, zlib.error, gzip.BadGzipFile):
        raise ConfigError(
            "expected a complete gzip stream, found a read error (truncated or corrupt gzip data)",
            where=where_line(where, number + 1),
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read file: {exc.strerror or 'read error'}", where=where_line(where, number + 1)
        ) from None
    finally:
        fh.close()


def brief(value: Any, width: int = 40) -> str:
    """``repr(value)`` when short, else what it is (a found value, never a screenful of input)."""
    if isinstance(value, str):
        return repr(value) if len(value) <= width else f"a string of {len(value):,} characters"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**width:
        return "an integer of more than 40 digits"
    if isinstance(value, Mapping):
        text = repr(dict(value)) if len(value) <= 8 else ""
        return text if text and len(text) <= width else f"an object with {len(value):,} keys"
    if isinstance(value, list | tuple):
        text = repr(value) if len(value) <= 8 else ""
        return text if text and len(text) <= width else f"a list of {len(value):,} items"
    text = repr(value)
    return text if len(text) <= width else f"a {type(value).__name__}"


def check_values(data: Any, where: str, *, join: Any = None) -> None:
    """Refuse non-finite floats (NaN, inf, 1e400) and integers beyond 64 bits anywhere in ``data``.

    ``join(where, key_path)`` builds the error location (default ``where: key.path``).
    """
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        key, value = stack.pop()
        if isinstance(value, Mapping):
            stack.extend((f"{key}.{k}" if key else str(k), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list | tuple):
            stack.extend((f"{key}[{i}]", v) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, float) and not math.isfinite(value):
            at = join(where, key) if join else (f"{where}: {key}" if key else where)
            raise ConfigError(f"expected a finite number, found {value!r}", where=at)
        elif isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
            at = join(where, key) if join else (f"{where}: {key}" if key else where)
            raise ConfigError(f"expected an integer that fits in 64 bits, found {brief(value)}", where=at)
