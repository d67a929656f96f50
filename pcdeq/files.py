"""Writing files so that an interruption never leaves half of one: every record, checkpoint,
weights file, measurement, table, figure and report of the project is written here, to a
temporary file in the same folder and then renamed over the target (atomic on POSIX)."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (creating its folders) via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide records from other users
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    """:func:`atomic_write_bytes` of ``obj`` as indented JSON with a final newline."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode())


def atomic_torch_save(path: Path, obj: Any) -> None:
    """``torch.save(obj, path)``, atomically."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def atomic_savefig(fig: Any, path: Path, **kw: Any) -> None:
    """``fig.savefig(path, **kw)``, atomically (the format from the suffix, as savefig's)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix[1:], **kw)
    atomic_write_bytes(path, buf.getvalue())
