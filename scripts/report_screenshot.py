"""Render an accuracy report (HTML from ``assess``) to a PNG, as QGIS's results panel shows it.

Usage: python scripts/report_screenshot.py REPORT.html OUTPUT.png [--width 1000]

Uses Qt WebKit from the system's PyQt5 (the engine behind QGIS's HTML viewers) on the
offscreen platform, so it runs headless.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt5.QtCore import QSize, Qt, QUrl  # noqa: E402
from PyQt5.QtGui import QImage, QPainter  # noqa: E402
from PyQt5.QtWebKitWidgets import QWebPage  # noqa: E402
from PyQt5.QtWidgets import QApplication  # noqa: E402


def render(report: Path, output: Path, width: int) -> None:
    """Load ``report``, size the page to its content (at least ``width`` wide), and paint
    it into ``output``."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    page = QWebPage()
    frame = page.mainFrame()
    loaded: list[bool] = []
    page.loadFinished.connect(loaded.append)
    frame.load(QUrl.fromLocalFile(str(report.resolve())))
    while not loaded:
        app.processEvents()
    if not loaded[0]:
        raise SystemExit(f"error: could not load {report}")
    for orientation in (Qt.Horizontal, Qt.Vertical):
        frame.setScrollBarPolicy(orientation, Qt.ScrollBarAlwaysOff)
    page.setViewportSize(QSize(width, 100))
    page.setViewportSize(frame.contentsSize())  # wide tables widen the image
    image = QImage(page.viewportSize(), QImage.Format_ARGB32)
    image.fill(0xFFFFFFFF)
    painter = QPainter(image)
    frame.render(painter)
    painter.end()
    if not image.save(str(output)):
        raise SystemExit(f"error: could not write {output}")
    print(f"wrote {output} ({image.width()} x {image.height()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--width", type=int, default=1000)
    args = parser.parse_args()
    render(args.report, args.output, args.width)


if __name__ == "__main__":
    main()
