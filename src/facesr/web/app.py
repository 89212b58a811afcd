"""`facesr serve`: a local page and a JSON API on the engine, the in-the-wild path and the report.

FastAPI with its own page (``page.html``: plain HTML and JavaScript, nothing fetched from elsewhere), not
Gradio: Gradio's front end, fonts and analytics reach for the network, and its queue hides the limits
below; this page is one file that works with no network at all.

Safety: the server binds to 127.0.0.1 unless told otherwise. Uploads are limited in bytes and pixels and
stored under names the server makes (a user's file name never reaches the file system); each request's
outputs live in a folder named by a random 128-bit token and are served only by their exact names, so
another request's outputs cannot be guessed; the gallery comes only from the server's command line.
A malformed upload is a 4xx with one line saying what is wrong; a full queue is a 503.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, File, Form, Request, UploadFile  # module level: FastAPI resolves the annotations here
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from facesr.errors import FacesrError, InputError
from facesr.methods.hub import DEFAULT_MODEL
from facesr.web.jobs import JobQueue, QueueFull, new_id

PAGE = Path(__file__).resolve().parent / "page.html"
IMAGE_MAGIC = [(b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF8", ".gif"), (b"BM", ".bmp"),
               (b"II*\x00", ".tif"), (b"MM\x00*", ".tif")]
VIDEO_MAGIC = [(b"\x1aE\xdf\xa3", ".mkv")]


class UserError(FacesrError):
    """A request's own problem: answered with ``status`` and one line."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class ServeConfig:
    gallery: Path | None = None  # <dir>/<identity>/<images>: the only gallery reports use
    models: tuple[str, ...] = ()  # models offered (default: every bundled one)
    work_dir: Path | None = None  # where request folders live (default: a temporary folder)
    max_upload_bytes: int = 25 * 2**20
    max_pixels: int = 16_000_000
    max_waiting: int = 8
    max_samples: int = 16
    precision: str = "bf16"
    device: str = "cpu"
    judges: tuple[str, ...] = ("dlib", "faceplugin")
    _tmp: object = field(default=None, repr=False)


def sniff(data: bytes) -> tuple[str, str]:
    """(kind, suffix) of an upload from its first bytes: ("image", ".png") or ("video", ".mp4"); UserError
    when it is neither."""
    if not data:
        raise UserError("the upload is empty")
    for magic, suffix in IMAGE_MAGIC:
        if data.startswith(magic):
            return "image", suffix
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image", ".webp"
    if data[4:8] == b"ftyp":
        return "video", ".mp4"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "video", ".avi"
    for magic, suffix in VIDEO_MAGIC:
        if data.startswith(magic):
            return "video", suffix
    raise UserError("the upload is not an image (PNG, JPEG, GIF, BMP, TIFF, WebP) or a video (MP4, MOV, MKV, WebM, AVI)", 415)


def check_pixels(path: Path, limit: int) -> None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception:
        raise UserError("the uploaded image cannot be read (corrupt or truncated)") from None
    if w * h > limit:
        raise UserError(f"the uploaded image has {w} x {h} pixels, above this server's limit of {limit:,}", 413)


def _user_message(message, path: Path) -> str:
    """An error (or its message) without the server's paths."""
    return str(message).replace(str(path), "the upload").replace(str(path.parent), "")


class Service:
    """The models, the face finder, the queue and the request folders behind the app."""

    def __init__(self, config: ServeConfig):
        from facesr.methods.hub import bundled_models

        self.config = config
        if config.work_dir is None:
            config._tmp = tempfile.TemporaryDirectory(prefix="facesr-serve-")
            config.work_dir = Path(config._tmp.name)
        self.work = Path(config.work_dir)
        self.work.mkdir(parents=True, exist_ok=True)
        bundled = [m["name"] for m in bundled_models() if m["name"] != "mtcnn"]
        self.models = ["default", "bicubic", *(config.models or bundled)]
        unknown = [m for m in config.models if m not in bundled]
        if unknown:
            raise FacesrError(f"--models {', '.join(unknown)}: not bundled models ({', '.join(bundled)})")
        if config.gallery is not None:
            from facesr.workflows.report import gallery_entries

            gallery_entries(config.gallery)  # a bad gallery stops the server at its start, with one line
        self.queue = JobQueue(config.max_waiting, user_errors=(UserError, FacesrError))
        self.files: dict[str, set[str]] = {}  # token -> the names served under it
        from facesr.identity.arcface import judges_dir

        self.embeddings = judges_dir().parent / "embeddings"  # the gallery's, kept between requests and runs
        self._finder = None
        self._restorers: dict = {}

    def finder(self):
        if self._finder is None:
            from facesr.wild.faces import FaceFinder

            self._finder = FaceFinder()
        return self._finder

    def restorer(self, model: str, sampler: str | None, samples: int):
        from facesr.workflows.restore import Restorer

        key = (model, sampler, samples)
        if key not in self._restorers:
            # 1 sample: each model's recipe as it is (as `facesr restore` runs it); 2 or more: that many draws, the
            # recipe's "draws" entry over it, for the spread maps (as `facesr restore --uncertainty`)
            overrides = {"precision": self.config.precision, **({"samples": samples} if samples > 1 else {})}
            if sampler:
                overrides["sampler"] = sampler
            self._restorers[key] = Restorer(model=None if model == "default" else model, device=self.config.device,
                                            overrides=overrides, draws=samples > 1)
        return self._restorers[key]

    def check_form(self, model: str, samples: int, sampler: str | None) -> None:
        from facesr.diffusion.samplers import SAMPLERS

        if model not in self.models:
            raise UserError(f"model {model!r} is not offered here; choose one of {', '.join(self.models)}")
        if not 1 <= samples <= self.config.max_samples:
            raise UserError(f"samples must be 1 to {self.config.max_samples}, got {samples}")
        if sampler and sampler not in SAMPLERS.names():
            raise UserError(f"sampler {sampler!r}: choose one of {', '.join(SAMPLERS.names())}")

    def new_request(self, data: bytes) -> tuple[str, Path, Path, str]:
        """(token, request folder, the upload's path, its kind): the folder is named by the job's token."""
        kind, suffix = sniff(data)
        token = new_id()
        folder = self.work / token
        folder.mkdir()
        upload = folder / f"upload{suffix}"
        upload.write_bytes(data)
        if kind == "image":
            try:
                check_pixels(upload, self.config.max_pixels)
            except UserError:
                shutil.rmtree(folder, ignore_errors=True)
                raise
        return token, folder, upload, kind

    # --- the work, run by the queue's worker ------------------------------------------------------
    def restore(self, job, folder: Path, upload: Path, kind: str, model: str, samples: int, sampler: str | None) -> dict:
        from PIL import Image

        from facesr.workflows.restore import restore_files
        from facesr.workflows.restore_video import restore_clip

        restorer = self.restorer(model, sampler, samples)
        out = folder / "out"
        problems: list[str] = []
        job.report(0.05, "finding and restoring faces")
        if kind == "video":
            try:
                record = restore_clip(upload, out, self.finder(), restorer, on_error=problems.append)
            except (InputError, FacesrError) as exc:
                raise UserError(_user_message(exc, upload)) from None
            names = [p.relative_to(out).as_posix() for p in sorted(out.rglob("*")) if p.is_file()]
            text = json.dumps(record, default=str).replace(f"{folder}/", "").replace(str(folder), "")  # no server paths
            return {"kind": "video", "record": json.loads(text),
                    "files": {n: f"out/{n}" for n in names}, "problems": [_user_message(p, upload) for p in problems]}
        try:
            chip = self._restore_chip(upload, out, restorer)
        except InputError as exc:
            raise UserError(_user_message(exc, upload)) from None
        if chip is None:
            manifest = restore_files([upload], out, self.finder(), restorer, on_error=problems.append,
                                     uncertainty=samples > 1)
            if manifest["failures"]:
                raise UserError(_user_message(manifest["failures"][0], upload))
        record = json.loads((out / "upload.json").read_text())
        record["input"] = "upload"
        names = ["upload.png"]
        for i, face in enumerate(record["faces"]):
            if "lr_chip" in face:  # the bicubic chip beside the restored one
                lr = Image.open(out / face["lr_chip"])
                face["bicubic"] = f"upload/face_{i:02d}_bicubic.png"
                lr.resize((128, 128), Image.BICUBIC).save(out / face["bicubic"])
                names += [face[k] for k in ("chip", "lr_chip", "bicubic", "std") if k in face]
        if self.config.gallery is not None:
            self._identify(job, record, out, names, model, samples, sampler)
        job.report(1.0, "done")
        return {"kind": "image", "record": record, "files": {n: f"out/{n}" for n in names},
                "problems": [_user_message(p, upload) for p in problems]}

    def _restore_chip(self, upload: Path, out: Path, restorer) -> dict | None:
        """A square image at a model's LR size is a face chip, already aligned: super-resolved as it is (no
        detection), written as restore_files writes a photo. None for any other image."""
        from facesr.engine.run import super_resolve_tensors
        from facesr.io.images import atomic_write_text, read_image, to_tensor, to_uint8, write_image
        from facesr.workflows.upscale import std_heatmap

        img = read_image(upload)
        h, w = img.shape[:2]
        if h != w or h not in restorer.lr_sizes():
            return None
        name, problem = restorer.choose(h)
        model, opts = restorer.load(name)
        if problem or model.needs.vector_dim or model.needs.reference:
            raise UserError(problem or f"{name} needs {model.needs.describe()}; the page gives it none")
        lr = to_tensor(img)
        up = model.lr_protocol.upsample(lr[None])[0]
        std = None
        if opts is None:
            sr = up
        else:
            (sr,), (std,) = super_resolve_tensors(model, [lr], ["upload"], opts, self.config.device, with_std=True)
        face = {"box": [0, 0, w, h], "landmarks": [], "score": None, "width_px": w, "model": name,
                "chip": "upload/face_00.png", "lr_chip": "upload/face_00_lr.png"}
        write_image(out / face["chip"], to_uint8(sr.clamp(0, 1)))
        write_image(out / face["lr_chip"], img)
        if opts is not None and restorer.draws and model.draws:
            face["std"] = "upload/face_00_std.png"
            write_image(out / face["std"], std_heatmap(std))
        write_image(out / "upload.png", to_uint8(sr.clamp(0, 1)))
        record = {"input": "upload", "chip": True, "scale": model.scale, "restored": "upload.png", "faces": [face]}
        atomic_write_text(out / "upload.json", json.dumps(record, indent=2) + "\n")
        return record

    def _identify(self, job, record, out: Path, names: list[str], model: str, samples: int, sampler) -> None:
        """Each restored face's report against the server's gallery: top-5 and stability per judge."""
        from facesr.workflows.report import make_report, write_report
        from facesr.workflows.restore import DEFAULT_MODELS

        faces = [f for f in record["faces"] if "lr_chip" in f]
        for n, face in enumerate(faces):
            job.report(0.5 + 0.5 * n / max(1, len(faces)), f"identifying face {n + 1} of {len(faces)}")
            overrides = {"precision": self.config.precision, **({"sampler": sampler} if sampler else {})}
            name = face["model"] if not face["model"].startswith("bicubic") else DEFAULT_MODELS[int(face["model"][9:])]
            report, images = make_report(out / face["lr_chip"], self.config.gallery, name,
                                         samples=samples, overrides=overrides, judges=self.config.judges,
                                         device=self.config.device, on_error=lambda m: None,
                                         cache_dir=self.embeddings)
            stem = Path(face["chip"]).with_suffix("").as_posix() + "_report"  # upload/face_NN_report/
            write_report(out / stem, report, images)
            names += [f"{stem}/report.html", f"{stem}/report.json"]
            face["report"] = f"{stem}/report.html"
            face["identities"] = [{"judge": j["judge"], "independent": j["independent"], "verdict": j["verdict"],
                                   "stability": j["samples"]["stability"], "top": j["samples"]["candidates"]}
                                  for j in report["judges"]]
            face["verdict"] = report["verdict"]  # the judges together

    def report(self, job, folder: Path, upload: Path, model: str, samples: int, sampler: str | None) -> dict:
        from facesr.workflows.report import make_report, write_report

        if self.config.gallery is None:
            raise UserError("this server has no gallery (start it with --gallery DIR)", 409)
        job.report(0.1, "sampling and identifying")
        overrides = {"precision": self.config.precision, **({"sampler": sampler} if sampler else {})}
        try:
            report, images = make_report(upload, self.config.gallery, DEFAULT_MODEL if model in ("default", "bicubic") else model,
                                         samples=samples, overrides=overrides, judges=self.config.judges,
                                         device=self.config.device, on_error=lambda m: None,
                                         cache_dir=self.embeddings, finder=self.finder())
        except (InputError, FacesrError) as exc:
            raise UserError(_user_message(exc, upload)) from None
        write_report(folder / "report", report, images)
        report["probe"] = "upload"
        return {"kind": "report", "record": report, "files": {"report.html": "report/report.html",
                                                              "report.json": "report/report.json"}}


def create_app(config: ServeConfig):
    service = Service(config)
    app = FastAPI(title="facesr", docs_url=None, redoc_url=None, openapi_url=None)  # docs pages load from a CDN
    app.state.service = service

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return HTMLResponse(PAGE.read_text())

    @app.get("/api/health")
    async def health():
        from facesr.diffusion.samplers import SAMPLERS

        return {"status": "ok" if service.queue.alive() else "worker stopped", "waiting": service.queue.waiting,
                "samplers": SAMPLERS.names(),
                "models": service.models, "gallery": config.gallery is not None,
                "max_samples": config.max_samples, "max_upload_bytes": config.max_upload_bytes}

    async def read_upload(image: UploadFile) -> bytes:
        data = await image.read(config.max_upload_bytes + 1)
        if len(data) > config.max_upload_bytes:
            raise UserError(f"the upload is larger than this server's limit of {config.max_upload_bytes // 2**20} MB", 413)
        return data

    async def run(work, data: bytes, wait: bool, kind_ok=("image", "video"), **form):
        service.check_form(form["model"], form["samples"], form["sampler"])
        token, folder, upload, kind = service.new_request(data)
        if kind not in kind_ok:
            shutil.rmtree(folder, ignore_errors=True)
            raise UserError("a report takes an image (a face chip or a photo), not a video", 415)
        args = (folder, upload, *([kind] if work == service.restore else []), form["model"], form["samples"], form["sampler"])
        try:
            job = service.queue.submit(lambda job: work(job, *args), token)
        except QueueFull as exc:
            shutil.rmtree(folder, ignore_errors=True)
            return JSONResponse({"error": f"the server is busy: {exc}"}, status_code=503, headers={"Retry-After": "5"})
        if not wait:
            return JSONResponse({"job": job.id, "status": f"/api/jobs/{job.id}"}, status_code=202)
        while not job.done.is_set():
            await asyncio.sleep(0.05)
        return job_response(job)

    def job_response(job):
        if job.status == "failed":
            return JSONResponse({"error": job.error, "job": job.id}, status_code=422)
        result = job.result
        service.files[job.id] = set(result["files"].values())
        urls = {name: f"/files/{job.id}/{path}" for name, path in result["files"].items()}
        return JSONResponse({"job": job.id, "kind": result["kind"], "result": result["record"], "urls": urls,
                             "problems": result.get("problems", [])})

    @app.post("/api/restore")
    async def restore(image: UploadFile = File(...), model: str = Form("default"), samples: int = Form(1),
                      sampler: str = Form(""), wait: bool = True):
        return await run(service.restore, await read_upload(image), wait, model=model, samples=samples,
                         sampler=sampler or None)

    @app.post("/api/report")
    async def report(image: UploadFile = File(...), model: str = Form(DEFAULT_MODEL), samples: int = Form(8),
                     sampler: str = Form(""), wait: bool = True):
        if config.gallery is None:
            raise UserError("this server has no gallery (start it with --gallery DIR)", 409)
        return await run(service.report, await read_upload(image), wait, kind_ok=("image",), model=model,
                         samples=samples, sampler=sampler or None)

    @app.get("/api/jobs/{job_id}")
    async def job_status(job_id: str):
        job = service.queue.get(job_id)
        if job is None:
            return JSONResponse({"error": "no such job"}, status_code=404)
        if job.done.is_set():
            response = job_response(job)
            body = json.loads(response.body)
            return JSONResponse({**job.view(), **body}, status_code=200 if job.status == "done" else response.status_code)
        return {**job.view(), "waiting": service.queue.waiting}

    @app.get("/files/{token}/{name:path}")
    async def files(token: str, name: str):
        allowed = service.files.get(token)
        if not allowed or name not in allowed:
            return JSONResponse({"error": "not found"}, status_code=404)
        return FileResponse(service.work / token / name)

    return app


def serve(app, host: str = "127.0.0.1", port: int = 7860) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning")
