"""Main job on the bundled default, through the real plugin path.

Installs the built plugin zip into a throwaway QGIS profile, classifies the bundled Indian
Pines scene with the shipped model through ``qgis_process``, renders a PNG preview (class
map beside ground truth, with legend) with QGIS, and prints OA/AA/kappa on the test split.
Usage (after scripts/setup.sh and scripts/build_plugin.py; scripts/demo.sh does all):
    python scripts/demo.py [--output-dir demo_output]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import build_plugin  # noqa: E402

from engine.data.raster import open_raster  # noqa: E402
from engine.data.scenes import BUNDLED_INDIAN_PINES  # noqa: E402
from engine.infer.model import OnnxClassifier  # noqa: E402
from engine.metrics import ClassificationMetrics, classification_metrics  # noqa: E402

SCENE = BUNDLED_INDIAN_PINES / "indian_pines.tif"
TEST_LABELS = BUNDLED_INDIAN_PINES / "indian_pines_test.tif"
GROUND_TRUTH = BUNDLED_INDIAN_PINES / "indian_pines_gt.tif"
QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"


def install_plugin(profile_root: Path) -> dict[str, str]:
    """Unzip the built plugin into a fresh profile and enable it; returns the environment."""
    plugins = profile_root / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    zip_path = (
        build_plugin.DIST_DIR / f"{build_plugin.PLUGIN_NAME}-{build_plugin.plugin_version()}.zip"
    )
    if not zip_path.exists():
        zip_path = build_plugin.build()
    zipfile.ZipFile(zip_path).extractall(plugins)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(profile_root))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("QGIS_PLUGINPATH", None)
    subprocess.run(
        [QGIS_PROCESS, "plugins", "enable", build_plugin.PLUGIN_NAME],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return env


def classify(env: dict[str, str], class_map: Path, confidence: Path) -> dict:
    """Run factoformer:classify through qgis_process; returns its JSON results."""
    command = [
        QGIS_PROCESS,
        "--json",
        "run",
        "factoformer:classify",
        "--",
        f"INPUT={SCENE}",
        f"OUTPUT={class_map}",
        f"CONFIDENCE={confidence}",
    ]
    print("$ " + shlex.join(command).replace(str(ROOT) + "/", ""))
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"qgis_process failed (rc {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def render_preview(
    class_map: Path, metrics: ClassificationMetrics, model_id: str, png: Path
) -> None:
    """Class map beside ground truth, rendered by QGIS with the layers' own styles, plus legend."""
    from qgis.core import (
        QgsMapRendererSequentialJob,
        QgsMapSettings,
        QgsRasterLayer,
    )
    from qgis.PyQt.QtCore import QRectF, QSize, Qt
    from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter

    panel, margin, legend_width = 435, 20, 300
    layers = [QgsRasterLayer(str(class_map), "map"), QgsRasterLayer(str(GROUND_TRUTH), "truth")]
    images = []
    for layer in layers:
        settings = QgsMapSettings()
        settings.setLayers([layer])
        settings.setExtent(layer.extent())
        settings.setOutputSize(QSize(panel, panel))
        settings.setBackgroundColor(QColor("white"))
        job = QgsMapRendererSequentialJob(settings)
        job.start()
        job.waitForFinished()
        images.append(job.renderedImage())
    width = 3 * margin + 2 * panel + legend_width
    height = panel + 95
    canvas = QImage(width, height, QImage.Format_ARGB32)
    canvas.fill(QColor("white"))
    painter = QPainter(canvas)
    painter.setRenderHint(QPainter.Antialiasing)
    title = QFont("DejaVu Sans", 13)
    title.setBold(True)
    text = QFont("DejaVu Sans", 10)
    painter.setFont(title)
    painter.drawText(margin, 28, f"Indian Pines (AVIRIS) classified by {model_id} via qgis_process")
    painter.setFont(text)
    captions = [
        f"Class map (test split: OA {100 * metrics.overall_accuracy:.2f} %, AA "
        f"{100 * metrics.average_accuracy:.2f} %, kappa {100 * metrics.kappa:.2f})",
        "Ground truth (train + test pixels)",
    ]
    for i, (image, caption) in enumerate(zip(images, captions, strict=True)):
        x = margin + i * (panel + margin)
        painter.drawImage(x, 60, image)
        painter.setPen(QColor("#555555"))
        painter.drawRect(x, 60, panel, panel)
        painter.setPen(QColor("black"))
        painter.drawText(QRectF(x, 40, panel + margin, 18), Qt.AlignLeft, caption)
    renderer = layers[0].renderer()
    x0, y = 3 * margin + 2 * panel - margin // 2, 64
    for entry in renderer.classes():
        painter.fillRect(x0, y, 16, 16, entry.color)
        painter.drawRect(x0, y, 16, 16)
        painter.drawText(x0 + 24, y + 13, entry.label)
        y += 24
    painter.setPen(QColor("#555555"))
    painter.drawText(
        margin,
        height - 18,
        "Data: AVIRIS Indian Pines, Purdue University (doi:10.4231/R7RX991C); split: Hong et al.",
    )
    painter.end()
    canvas.save(str(png))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "demo_output")
    args = parser.parse_args()
    out_dir = args.output_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    class_map = out_dir / "indian_pines_classes.tif"
    confidence = out_dir / "indian_pines_confidence.tif"
    png = out_dir / "indian_pines_preview.png"

    with tempfile.TemporaryDirectory(prefix="factoformer-demo-profile-") as profile:
        env = install_plugin(Path(profile))
        result = classify(env, class_map, confidence)
    results = result["results"]
    model_id = results["MODEL_ID"]
    num_classes = OnnxClassifier(
        build_plugin.BUILD_DIR / "models" / "factoformer_indian_pines.onnx"
    ).metadata.num_classes
    reference = open_raster(TEST_LABELS).ReadAsArray()
    predicted = open_raster(class_map).ReadAsArray()
    metrics = classification_metrics(reference, predicted, num_classes)
    from qgis.core import QgsApplication

    app = QgsApplication([], True)
    app.initQgis()
    render_preview(class_map, metrics, model_id, png)

    print(f"model: {model_id}; {results['CLASSIFIED_PIXELS']} pixels classified")
    print(f"class map:  {class_map}  (styled: {class_map.with_suffix('.qml').name})")
    print(f"confidence: {confidence}")
    print(f"preview:    {png}")
    print(f"test split: {metrics.summary()}")
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
