"""GDAL's own messages, kept off stderr: errors become exceptions, the rest goes to a log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from osgeo import gdal

LOGGER = logging.getLogger("engine.gdal")


@contextmanager
def gdal_messages_logged() -> Iterator[None]:
    """Send GDAL's message lines (``Warning 1: ...``, ``ERROR 4: ...``) to the
    ``engine.gdal`` logger instead of stderr while the block runs, on this thread.

    Errors still raise exceptions (``gdal.UseExceptions``) and reach the user as one-line
    engine errors; warnings about inputs the engine accepts are logged at DEBUG level.
    """

    def handler(level: int, number: int, message: str) -> None:
        LOGGER.debug("GDAL message %d (level %d): %s", number, level, message)

    gdal.PushErrorHandler(handler)
    try:
        yield
    finally:
        gdal.PopErrorHandler()
