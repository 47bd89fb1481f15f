"""The on-disk data cache: ``$JMOF_CACHE``, default ``~/.cache/jmof``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Root of jmof's data cache (``$JMOF_CACHE`` if set, else ``~/.cache/jmof``)."""
    root = os.environ.get("JMOF_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "jmof"
