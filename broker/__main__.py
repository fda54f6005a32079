"""``python -m broker`` / ``ngsild-broker``: start the broker and the IoT agents."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from .config import load_settings
from .logs import setup_logging
from .runtime import serve


def main(argv: Sequence[str] | None = None) -> None:
    settings = load_settings(sys.argv[1:] if argv is None else argv)
    setup_logging(settings.log_level, settings.log_format)
    run = asyncio.run
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    try:
        run(serve(settings))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
