"""`facesr serve`: the JSON API, its limits and safety, 50 concurrent requests, and the page in headless Chromium."""

import io
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facesr.web.app import ServeConfig, create_app

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
pytestmark = pytest.mark.slow
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "facesr" / "samples" / "faces"


def scene_png(div: int = 8) -> bytes:
    """Three sample faces side by side on grey, downscaled so each chip is 128 / div px."""
    chips = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(SAMPLES.glob("*.png"))[:3]]
    full = np.full((128 + 128, 3 * 128 + 4 * 64, 3), 128, np.uint8)
    for i, chip in enumerate(chips):
        full[64:192, 64 + i * 192 : 192 + i * 192] = chip
    h, w = full.shape[0] // div * div, full.shape[1] // div * div
    img = Image.fromarray(full[:h, :w]).resize((w // div, h // div), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, config: ServeConfig):
        self.port = free_port()
        self.app = create_app(config)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    gallery = tmp_path_factory.mktemp("gallery")
    for p in sorted(SAMPLES.glob("*.png")):
        (gallery / p.stem).mkdir()
        (gallery / p.stem / p.name).write_bytes(p.read_bytes())
    s = Server(ServeConfig(gallery=gallery, work_dir=tmp_path_factory.mktemp("work"), max_upload_bytes=2 * 2**20,
                           max_pixels=4_000_000, max_waiting=4, precision="fp32", judges=("faceplugin",)))
    yield s
    s.stop()


def post(server, path="/api/restore", data=None, files=None, **kw):
    return httpx.post(server.url + path, data=data or {}, files=files, timeout=300, **kw)


def test_health_and_the_page(server):
    h = httpx.get(server.url + "/api/health").json()
    assert h["status"] == "ok" and "default" in h["models"] and "bicubic" in h["models"] and h["gallery"] is True
    page = httpx.get(server.url + "/").text
    assert "<form" in page and "http://" not in page and "https://" not in page  # nothing fetched from elsewhere


def test_restore_returns_restores_json_with_urls(server):
    r = post(server, files={"image": ("../../../etc/passwd", scene_png(), "image/png")}, data={"model": "default"})
    assert r.status_code == 200, r.text
    body = r.json()
    rec = body["result"]
    assert rec["input"] == "upload" and rec["scale"] == 8 and len(rec["faces"]) == 3
    for face in rec["faces"]:
        assert set(face) >= {"box", "landmarks", "score", "width_px", "model", "chip", "lr_chip", "bicubic", "identities"}
        for key in ("chip", "lr_chip", "bicubic", "report"):
            got = httpx.get(server.url + body["urls"][face[key]])
            assert got.status_code == 200 and len(got.content) > 100
        assert face["identities"][0]["judge"] == "faceplugin-arcface" and len(face["identities"][0]["top"]) == 5
    photo = Image.open(io.BytesIO(httpx.get(server.url + body["urls"]["upload.png"]).content))
    assert photo.size[0] == 8 * Image.open(io.BytesIO(scene_png())).size[0]
    # the user's file name never reached the file system
    work = Path(server.app.state.service.work)
    assert not any("passwd" in p.name for p in work.rglob("*"))


def test_outputs_cannot_be_guessed_or_escaped(server):
    body = post(server, files={"image": ("a.png", scene_png(), "image/png")}, data={"model": "bicubic"}).json()
    url = body["urls"]["upload.png"]
    token = url.split("/")[2]
    assert httpx.get(server.url + url).status_code == 200
    other = "0" * len(token)
    for bad in (f"/files/{other}/out/upload.png", f"/files/{token}/out/../upload.png", f"/files/{token}/upload.png",
                f"/files/{token}/%2e%2e/%2e%2e/etc/passwd", f"/files/{token}/out/upload.json"):
        assert httpx.get(server.url + bad).status_code == 404, bad


@pytest.mark.parametrize("name, data, status, message", [
    ("empty.png", b"", 400, "the upload is empty"),
    ("cut.png", None, 422, "the upload"),
    ("text.png", b"hello, not an image at all", 415, "not an image"),
    ("fake.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200, 422, ""),
    ("big.png", None, 413, "above this server's limit"),
    ("huge.bin", b"\x89PNG\r\n\x1a\n" + b"\x00" * (2 * 2**20 + 10), 413, "larger than this server's limit"),
])
def test_malformed_uploads_are_4xx_with_a_message(server, name, data, status, message):
    if name == "cut.png":
        data = scene_png()[:300]
    if name == "big.png":
        buf = io.BytesIO()
        Image.new("RGB", (2500, 2000)).save(buf, format="PNG")
        data = buf.getvalue()
    r = post(server, files={"image": (name, data, "application/octet-stream")})
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    assert "/tmp" not in r.json()["error"] and str(server.app.state.service.work) not in r.text  # no server paths
    assert httpx.get(server.url + "/api/health").json()["status"] == "ok"


def test_bad_form_values(server):
    for data, message in (({"model": "nope"}, "is not offered here"), ({"samples": "99"}, "samples must be 1 to"),
                          ({"sampler": "nope"}, "sampler 'nope'")):
        r = post(server, files={"image": ("a.png", scene_png(), "image/png")}, data=data)
        assert r.status_code == 400 and message in r.json()["error"]


def test_report_api_on_a_chip(server):
    chip = Image.open(SAMPLES / sorted(p.name for p in SAMPLES.glob("*.png"))[1]).convert("RGB").resize((16, 16), Image.BICUBIC)
    buf = io.BytesIO()
    chip.save(buf, format="PNG")
    r = post(server, "/api/report", files={"image": ("c.png", buf.getvalue(), "image/png")},
             data={"model": "msrresnet-x8", "samples": "2"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "report" and body["result"]["judges"][0]["samples"]["samples"] == 2
    html = httpx.get(server.url + body["urls"]["report.html"]).text
    assert "facesr forensic report" in html


def test_fifty_concurrent_requests_are_all_answered(server):
    png = scene_png()

    def one(i):
        try:
            r = httpx.post(server.url + "/api/restore", files={"image": (f"{i}.png", png, "image/png")},
                           data={"model": "bicubic"}, timeout=600)
            return r.status_code
        except httpx.HTTPError as exc:
            return repr(exc)

    with ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(one, range(50)))
    assert all(c in (200, 503) for c in codes), codes
    assert codes.count(200) >= 1 and codes.count(503) >= 1  # some ran, the rest were refused at once
    assert httpx.get(server.url + "/api/health").json()["status"] == "ok"
    assert post(server, files={"image": ("a.png", png, "image/png")}, data={"model": "bicubic"}).status_code == 200


def test_the_page_in_headless_chromium(server, tmp_path, chromium):
    photo = tmp_path / "scene.png"
    photo.write_bytes(scene_png())
    requests = []
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    page.on("request", lambda req: requests.append(req.url))
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('model').options.length > 2")
    page.set_input_files("#file", str(photo))
    page.select_option("#model", "default")
    page.click("#go")
    page.wait_for_selector(".face[data-face='2'] figure img", timeout=240_000)
    assert page.locator(".face").count() == 3
    assert page.locator(".face figure img").count() == 3 * 3  # LR, bicubic, restored (1 sample: no std)
    assert page.locator(".verdict").count() == 3
    assert page.eval_on_selector("#photo", "i => i.naturalWidth") > 0
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    # a malformed upload: an error in the page, not a crash
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    page.set_input_files("#file", str(bad))
    page.click("#go")
    page.wait_for_function("document.getElementById('error').textContent.length > 0")
    assert "not an image" in page.inner_text("#error")
    assert all(u.startswith(server.url) for u in requests), [u for u in requests if not u.startswith(server.url)]
    assert Image.open(tmp_path / "page.png").size[0] == 1200


def test_a_face_chip_is_restored_as_it_is(server):
    chip = Image.open(sorted(SAMPLES.glob("*.png"))[0]).convert("RGB").resize((16, 16), Image.BICUBIC)
    buf = io.BytesIO()
    chip.save(buf, format="PNG")
    r = post(server, files={"image": ("chip.png", buf.getvalue(), "image/png")}, data={"model": "default"})
    assert r.status_code == 200, r.text
    rec = r.json()["result"]
    assert rec["chip"] is True and rec["scale"] == 8 and len(rec["faces"]) == 1
    face = rec["faces"][0]
    assert face["model"] == "msrresnet-x8-wild" and face["identities"]
    restored = Image.open(io.BytesIO(httpx.get(server.url + r.json()["urls"][face["chip"]]).content))
    assert restored.size == (128, 128)


def test_one_sample_is_the_recipe_and_more_are_draws(server):
    """As `facesr restore` and `restore --uncertainty`: the form's 1 sample runs the model's recipe unchanged (6 one-step
    estimates of the mean for sr3-x8-res), 2 or more run that many draws (the recipe's "draws" steps)."""
    service = server.app.state.service
    model, one = service.restorer("sr3-x8-res", None, 1).load("sr3-x8-res")
    _, two = service.restorer("sr3-x8-res", None, 2).load("sr3-x8-res")
    assert (one.samples, one.steps) == (model.sampling["samples"], model.sampling["steps"]) and one.samples > 1
    assert two.samples == 2 and two.steps == model.sampling["draws"]["steps"] > one.steps


def test_a_short_video(server, tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_restore_video import _frames, _video

    _video(tmp_path / "clip.mp4", _frames(6), audio=False)
    r = post(server, files={"image": ("clip.mp4", (tmp_path / "clip.mp4").read_bytes(), "video/mp4")},
             data={"model": "default"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "video" and any(n.endswith(".mp4") for n in body["urls"])
    assert str(server.app.state.service.work) not in json.dumps(body)  # no server paths
    mp4 = next(u for n, u in body["urls"].items() if n.endswith(".mp4"))
    assert httpx.get(server.url + mp4).content[4:8] == b"ftyp"
