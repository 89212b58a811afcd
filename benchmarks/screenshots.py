"""The README's pictures of the forensic report and of the web page, made from real dev data.

    python benchmarks/screenshots.py

report.png: `facesr report` on the LR x8 chip of a dev/lfw probe, against the 200 dev/lfw gallery chips
(sr3-x8, 16 samples). serve.png: the page of `facesr serve --gallery dev/lfw` after restoring a scene of
three dev/lfw_photos downscaled by 8 (faces of about 14 px). Both rendered in headless Debian Chromium.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def gallery_of_firsts(root: Path, into: Path) -> Path:
    """<into>/<identity>/<1st image>: the gallery of the identity protocol."""
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        first = sorted(folder.iterdir())[0]
        (into / folder.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(first, into / folder.name / first.name)
    return into


def main() -> int:
    from playwright.sync_api import sync_playwright

    from facesr.degrade.protocol import LRProtocol
    from facesr.io.images import read_image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", default="../shared/data/dev/lfw")
    ap.add_argument("--photos", default="../shared/data/dev/lfw_photos")
    ap.add_argument("--probe", default="Al_Gore")
    ap.add_argument("--scene", nargs=3, default=["Colin_Farrell", "Halle_Berry", "Tony_Blair"])
    ap.add_argument("--out", default="benchmarks/figures")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="facesr-shots-"))
    gallery = gallery_of_firsts(Path(args.lfw), tmp / "gallery")
    probe = sorted((Path(args.lfw) / args.probe).iterdir())[1]
    lr, _ = LRProtocol.of("bicubic", 8).lr_image(read_image(probe))
    Image.fromarray(lr).save(tmp / f"{args.probe}_lr.png")
    subprocess.run([sys.executable, "-m", "facesr.cli", "report", str(tmp / f"{args.probe}_lr.png"), "--gallery",
                    str(gallery), "--precision", "fp32", "-o", str(tmp / "report")], check=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto((tmp / "report" / "report.html").as_uri())
        page.screenshot(path=f"{args.out}/report.png", full_page=True)
        browser.close()

    import uvicorn

    from facesr.web.app import ServeConfig, create_app

    photos = [read_image(Path(args.photos) / n / f"{n}_0002.jpg") for n in args.scene]
    scene = np.concatenate(photos, axis=1)
    h, w = scene.shape[0] // 8 * 8, scene.shape[1] // 8 * 8
    Image.fromarray(scene[:h, :w]).resize((w // 8, h // 8), Image.BICUBIC).save(tmp / "scene.png")
    app = create_app(ServeConfig(gallery=gallery, work_dir=tmp / "work", precision="fp32"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=7861, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.1)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto("http://127.0.0.1:7861/")
        page.wait_for_function("document.getElementById('model').options.length > 2")
        page.set_input_files("#file", str(tmp / "scene.png"))
        page.fill("#samples", "1")
        page.click("#go")
        page.wait_for_selector(".face[data-face='0'] .verdict", timeout=900_000)
        page.screenshot(path=f"{args.out}/serve.png", full_page=True)
        browser.close()
    server.should_exit = True
    print(f"wrote {args.out}/report.png and {args.out}/serve.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
