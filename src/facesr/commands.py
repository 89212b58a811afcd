"""The CLI's sub-commands: argument handling around facesr.pipelines."""

from __future__ import annotations

import json
from pathlib import Path


def cmd_train(args) -> int:
    from facesr.train.config import load_experiment
    from facesr.train.loop import train

    cfg = load_experiment(args.config)
    if args.data:
        cfg.data.train_dirs = tuple(args.data)
    out = Path(args.out or f"runs/{cfg.name}")
    result = train(cfg, out, resume=args.resume, max_steps=args.max_steps, progress=not args.no_progress)
    if result["stopped_by"]:
        print(f"stopped by {result['stopped_by']} at step {result['step']}; checkpoint {result['checkpoint']}")
        data = f" --data {' '.join(args.data)}" if args.data else ""
        print(f"continue with: facesr train {args.config}{data} --out {out} --resume")
    else:
        print(f"trained to step {result['step']} in {result['seconds']:.0f} s; checkpoint {result['checkpoint']}")
    return 0


def parse_lr_view(text: str | None):
    """'OPERATOR:SCALE' -> the operator (None for no text)."""
    if not text:
        return None
    from facesr.data.resample import make_operator
    from facesr.errors import FacesrError

    name, _, scale = text.partition(":")
    if not scale.isdigit():
        raise FacesrError(f"--lr {text!r}: expected OPERATOR:SCALE, e.g. bicubic:8")
    return make_operator(name, int(scale))


def cmd_features(args) -> int:
    from facesr.errors import FacesrError
    from facesr.identity import features
    from facesr.pipelines.identity_eval import make_embedder

    if args.skip < 0 or args.max_images < 0 or args.limit < 0:
        raise FacesrError("--skip, --max-images and --limit must be non-negative")
    operator = parse_lr_view(args.lr)
    embedder = make_embedder(args.embedder)
    failures = _Reported()

    if args.others is not None and not args.per_image:
        raise FacesrError("--others makes one row per image: add --per-image")
    if args.others is not None:
        from facesr.pipelines.identity_refs import parse_aux

        groups = features.identity_images(args.root, args.skip, args.max_images)
        table = features.others_table(embedder, groups, args.root, operator, parse_aux(args.others, "--others"),
                                      args.aggregate, args.renorm, args.seed, on_error=failures)
    elif args.per_image:
        table = features.per_image_table(embedder, args.root, operator, args.limit, on_error=failures,
                                         progress=lambda i, n: print(f"\r{i}/{n} images", end="", flush=True))
        print()
    else:
        groups = features.identity_images(args.root, args.skip, args.max_images)
        table = features.identity_table(embedder, groups, operator, args.aggregate, args.renorm, on_error=failures)
    table.meta["embedder_spec"] = args.embedder
    table.save(args.out)
    kind = "images" if args.per_image else "identities"
    print(f"wrote {args.out}: {len(table.names)} {kind} x {table.dim} ({table.meta['embedder']}, view {table.meta['view']})")
    if failures:
        _stderr(f"{len(failures)} input(s) could not be used")
        return 1
    return 0


def cmd_benchmark(args) -> int:
    from facesr.errors import FacesrError
    from facesr.pipelines.benchmark import parse_method, run_benchmark
    from facesr.pipelines.identity_eval import make_embedder
    from facesr.runtime import resolve_device

    methods = [parse_method(text) for text in args.method]
    labels = [m.label for m in methods]
    if len(set(labels)) != len(labels):
        raise FacesrError(f"--method labels must differ, got {labels}")
    if args.baseline is not None and args.baseline not in labels:
        raise FacesrError(f"--baseline {args.baseline!r} is not one of the --method labels {labels}")
    failures = _Reported()

    result = run_benchmark(args.hr, methods, args.out, make_embedder(args.identity), resolve_device(args.device),
                           args.limit, args.batch_size, args.seed, args.precision, on_error=failures)
    print(result["markdown"])
    print(f"wrote {Path(args.out) / 'benchmark.md'} and benchmark.csv")
    if args.baseline is not None:
        from facesr.pipelines.compare import compare_runs, write_comparison

        out = Path(args.out)
        paired = compare_runs((args.baseline, out / args.baseline),
                              [(label, out / label) for label in labels if label != args.baseline], seed=args.seed,
                              on_error=failures)
        write_comparison(paired, out)
        print(paired["markdown"])
        print(f"wrote {out / 'paired.md'}")
    return 1 if failures else 0


def _labelled_run(text: str) -> tuple[str, Path]:
    """'LABEL=FOLDER' or 'FOLDER' (labelled by its name)."""
    label, sep, folder = text.partition("=")
    if not sep or not label or Path(text).exists():
        return Path(text).name or text, Path(text)
    return label, Path(folder)


def cmd_compare(args) -> int:
    from facesr.errors import FacesrError
    from facesr.pipelines.compare import compare_runs, write_comparison

    start, sep, stop = args.slice.partition(":")
    try:
        probes = slice(int(start) if start else None, int(stop) if stop else None)
    except ValueError:
        probes = None
    if not sep or probes is None:
        raise FacesrError(f"--slice {args.slice!r}: expected START:STOP with whole numbers, e.g. 100: or :50")
    failures = _Reported()
    result = compare_runs(_labelled_run(args.base), [_labelled_run(t) for t in args.runs], seed=args.seed, probes=probes,
                          on_error=failures, common=args.common)
    print(result["markdown"])
    if args.out:
        write_comparison(result, args.out)
        print(f"wrote {Path(args.out) / 'paired.md'} and paired.json")
    return 1 if failures else 0


def cmd_export(args) -> int:
    from facesr.models.hub import load_model

    model = load_model(args.checkpoint, use_ema=True)
    state = json.loads((Path(args.checkpoint) / "state.json").read_text()) if (Path(args.checkpoint) / "state.json").exists() else {}
    recipe = {k: v for k, v in _recipe(args).items() if v is not None}
    model.save_pretrained(args.out, ema_state=model.state_dict(), include_raw=False,
                          card={"trained_steps": state.get("step")}, sampling=recipe or None)
    print(f"wrote {args.out} (EMA weights)")
    return 0


def cmd_models(args) -> int:
    from facesr.models.hub import bundled_models

    rows = bundled_models()
    if not rows:
        print("no bundled models installed")
        return 0
    print(f"{'name':<20} {'method':<10} {'scale':<6} {'input':<8} {'output':<8} {'LR protocol':<12} {'identity':<12} "
          f"{'size':<9} recommended sampling")
    for r in rows:
        recipe = ", ".join(f"{k} {v}" for k, v in r["sampling"].items()) or "-"
        print(f"{r['name']:<20} {r['method']:<10} x{r['scale']:<5} {r['input']:<8} {r['output']:<8} {r['operator']:<12} "
              f"{r['identity']:<12} {str(r['size_mb']) + ' MB':<9} {recipe}")
    return 0


def _recipe(args) -> dict:
    from facesr.pipelines.upscale import RECIPE_KEYS

    return {k: getattr(args, k) for k in RECIPE_KEYS}


def _sampling(args, model):
    from facesr.pipelines.upscale import SamplingOptions

    return SamplingOptions.for_model(model, **_recipe(args), seed=args.seed, batch_size=args.batch_size,
                                     precision=args.precision)


def _model(args):
    from facesr.models.hub import load_model
    from facesr.runtime import resolve_device

    device = resolve_device(args.device)
    return load_model(args.model, device), device


def _stderr(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr)


class _Reported(list):
    """An ``on_error`` callback: prints each message to stderr and keeps it for the exit code."""

    def __call__(self, message: str) -> None:
        self.append(message)
        _stderr(message)


def cmd_demo(args) -> int:
    from facesr.pipelines.demo import run_demo

    model, device = _model(args)
    run_demo(model, _sampling(args, model), device, args.out)
    return 0


def cmd_upscale(args) -> int:
    from facesr.data.io import expand_inputs
    from facesr.pipelines.upscale import upscale_files

    from facesr.errors import FacesrError
    from facesr.pipelines.identity_refs import needs_reference, read_reference, refs_vectors, vector_dim

    if args.frames is not None:
        return _upscale_video(args)
    paths = expand_inputs(args.inputs)
    model, device = _model(args)
    opts = _sampling(args, model)
    if args.uncertainty and opts.samples < 2:
        raise FacesrError("--uncertainty needs --samples 2 or more")
    vectors, unusable_refs = None, _Reported()
    if args.refs:
        vectors = refs_vectors(model, paths, args.refs, on_error=unusable_refs)
    elif vector_dim(model):
        raise FacesrError(f"{model.source} is conditioned on identity (FASR): give --refs with other images of the "
                          "person, or a features file from 'facesr features'")
    if needs_reference(model) != bool(args.ref):
        raise FacesrError(f"{model.source} needs a reference photo of the person: give --ref FACE" if not args.ref
                          else f"--ref: {model.source} takes no reference photo (only RefSR-VAE models do)")
    ref = read_reference(model, args.ref) if args.ref else None
    result = upscale_files(model, paths, args.out, opts, device, on_error=_stderr, uncertainty=args.uncertainty,
                           vectors=vectors, ref=ref)
    print(f"wrote {len(result['outputs'])} image(s) to {args.out} ({result['seconds_per_face']:.2f} s per face)")
    if result["failures"]:
        _stderr(f"{len(result['failures'])} input(s) failed; see {Path(args.out) / 'facesr-run.json'}")
    return 1 if result["failures"] or unusable_refs else 0  # an unusable reference was reported above


def _upscale_video(args) -> int:
    from facesr.pipelines.video_sr import upscale_clips

    model, device = _model(args)
    opts = _sampling(args, model)
    result = upscale_clips(model, [Path(s) for s in args.inputs], args.out, opts, device, args.frames, args.frame_step,
                           args.fps, video=not args.no_video, on_error=_stderr,
                           progress=lambda i, n: print(f"\r{i}/{n} frames", end="", flush=True))
    print()
    for clip in result["clips"]:
        print(f"{clip['source']}: {clip['frames']} frames -> {clip['frames_dir']}"
              + (f" and {clip['video']}" if clip["video"] else "") + f" ({clip['seconds_per_frame']:.2f} s per frame)")
    if result["failures"]:
        _stderr(f"{len(result['failures'])} clip(s) failed; see {Path(args.out) / 'facesr-run.json'}")
        return 1
    return 0


def _identity(args):
    """(embedder, gallery {identity: first image}) for --identity; the gallery only with --protocol second."""
    if not args.identity:
        return None, None
    from facesr.identity.recognition import identity_split
    from facesr.pipelines.identity_eval import make_embedder

    gallery = None
    if args.protocol == "second":
        gallery = {name: entry["gallery"] for name, entry in identity_split(args.hr).items()}
    return make_embedder(args.identity), gallery


def _condition_inputs(args, model, hr):
    """FASR vectors from each probe's aux images, RefSR references (--ref-from): (probes, vectors, refs, summary entries)."""
    from facesr.errors import FacesrError
    from facesr.pipelines.identity_refs import condition_inputs, needs_reference, parse_aux, vector_dim

    parse_aux(args.aux)  # a malformed --aux is an error whatever the model
    if not (vector_dim(model) or needs_reference(model)):
        return hr, None, None, None
    if args.protocol != "second":
        raise FacesrError(f"{model.source} takes other images of each identity (aux images or a reference): "
                          "evaluate it with --protocol second")
    unusable = _Reported()
    runnable, vectors, refs, extra = condition_inputs(model, hr, args.aux, args.ref_from, on_error=unusable,
                                                      view=args.aux_view)
    extra["unusable_images"] = unusable  # aux or reference images that could not be used
    if not runnable:
        raise FacesrError(f"{args.hr}: no probe has an aux image (identity folders need 3 or more images)")
    if len(runnable) < len(hr):
        print(f"{len(hr) - len(runnable)} probe(s) without a usable aux image left out")
    return runnable, vectors, refs, extra


def cmd_evaluate(args) -> int:
    from facesr.data.resample import make_operator
    from facesr.errors import FacesrError
    from facesr.pipelines import evaluate

    if args.run:
        model, device = _model(args)
        if args.op and args.op != model.cfg.operator or args.scale and args.scale != model.cfg.scale:
            raise FacesrError(f"--run makes LR with the model's own operator ({model.cfg.operator} x{model.cfg.scale}); drop --op/--scale")
        hr = evaluate.select_hr(args.hr, args.protocol, args.limit)
        embedder, gallery = _identity(args)
        hr, vectors, refs, extra = _condition_inputs(args, model, hr)
        done = lambda n, total: print(f"\r{n}/{total} faces", end="", flush=True)
        result = evaluate.run_and_evaluate(model, hr, _sampling(args, model), device, args.out, args.y, args.crop,
                                           _stderr, done, embedder, gallery, vectors, extra, refs)
        print()
    else:
        if not args.sr:
            raise FacesrError("give --sr DIR (images to score) or --run (make them with --model)")
        found = None if args.op or args.scale else evaluate.find_operator(args.sr, args.lr)
        if found:
            op, source = found
        else:
            op = make_operator(args.op or "bicubic", args.scale or 8)
            source = "--op/--scale" if args.op or args.scale else "default (no degradation.json or run manifest found)"
        print(f"operator {op.name} x{op.scale} from {source}")
        result = evaluate.evaluate_folders(args.sr, args.hr, op, args.lr, args.y, args.crop, args.out, _stderr)
    metrics = result["summary"]["metrics"]
    for k, v in metrics.items():
        print(f"{k:<22} {v['mean']:.4f} ± {v['std']:.4f}  (n={v['n']})")
    ident = result["summary"].get("identity")
    if ident:
        print(f"identity ({ident['embedder']}): CS SR {ident['cs']['mean']:.4f}, bicubic {ident['bicubic_cs']['mean']:.4f}")
        for kind in ("sr", "bicubic", "hr"):
            if f"{kind}_probes" in ident:
                r = ident[f"{kind}_probes"]
                ci = "" if not r.get("rank1_ci95") else " [95 % CI {:.3f}, {:.3f}]".format(*r["rank1_ci95"])
                print(f"  {kind:<8} probes: rank-1 {r['rank1']:.3f}{ci}  EER {r['eer']:.3f}  "
                      f"(gallery of {ident['gallery_identities']} identities)")
    print(f"per-image CSV and summary JSON in {args.out}")
    failed = result["summary"]["failures"] + result["summary"].get("unusable_images", [])
    if failed:
        _stderr(f"{len(failed)} input(s) could not be evaluated; listed in {Path(args.out) / 'summary.json'}")
    return 1 if failed else 0


def cmd_prepare(args) -> int:
    from facesr.data.prepare import prepare

    meta = prepare(args.src, args.out, args.scale, args.size, args.op, on_error=_stderr)
    print(f"wrote {meta['images']} image(s) to {args.out} (hr_{meta['hr_size']}, lr_{meta['lr_size']}, sr_{meta['lr_size']}_{meta['hr_size']})")
    return 1 if meta["skipped"] else 0


def cmd_prepare_video(args) -> int:
    from facesr.data.video import prepare_video

    res = prepare_video(args.src, args.out, args.frames, args.interval, args.scale, args.size, args.op,
                        align=args.align, fps=args.fps, start_s=args.start, on_error=_stderr)
    lr, hr = res["lr_size"], res["hr_size"]
    print(f"wrote {res['clips_written']} clip(s) x {res['frames_per_clip']} frames to {args.out} "
          f"(hr_{hr}, lr_{lr}, sr_{lr}_{hr}; {res['operator']['name']} x{res['operator']['scale']}); "
          f"skipped {len(res['skipped'])}")
    return 1 if res["skipped"] else 0


def cmd_sweep(args) -> int:
    """The pc sampler over snr values r (--snr), or samplers at equal network-evaluation budgets (--nfe)."""
    from facesr.errors import FacesrError
    from facesr.models.diffusion_sr import DiffusionSRMixin
    from facesr.pipelines import evaluate, sweep

    if (args.snr is None) == (args.nfe is None):
        raise FacesrError("choose one sweep: --snr R [R ...] (pc sampler) or --nfe [N ...] (samplers at equal cost)")
    if args.snr is not None:
        snrs = sweep.check_snrs(args.snr)
        if args.sampler not in (None, "pc"):
            raise FacesrError(f"--snr sweeps the pc sampler's r; drop --sampler {args.sampler}")
        if not args.identity:
            raise FacesrError("--snr reproduces the PSNR/CS figures: give --identity dlib (or adaface:CKPT[:ARCH])")
    else:
        nfes, samplers = sweep.check_nfe(args.nfe or sweep.DEFAULT_NFE, args.samplers)
        if args.sampler or args.steps:
            raise FacesrError("--nfe sets the steps of each sampler in --samplers; drop --sampler/--steps")
    if args.strength is not None and not 0 < args.strength <= 1:
        raise FacesrError(f"--strength must be in (0, 1], got {args.strength}")
    model, device = _model(args)
    if not isinstance(model, DiffusionSRMixin):
        raise FacesrError(f"--model {args.model}: a {model.method} model has no sampler to sweep")
    hr = evaluate.select_hr(args.hr, args.protocol, args.limit)
    embedder, gallery = _identity(args)
    recipe = {**_recipe(args), "snr": None}
    recipe.update({"sampler": "pc"} if args.snr is not None else {"sampler": None, "steps": None})
    from facesr.pipelines.upscale import SamplingOptions

    opts = SamplingOptions.for_model(model, **recipe, seed=args.seed, batch_size=args.batch_size, precision=args.precision)
    print(f"{len(hr)} face(s) from {args.hr}; writing to {args.out}")
    failures = _Reported()

    if args.snr is not None:
        result = sweep.sweep_snr(model, hr, opts, snrs, device, args.out, embedder, gallery, on_error=failures)
        corr = result["info"]["pearson_cs_psnr"]
        print(f"Pearson correlation of CS and PSNR over {result['info']['pearson_points']} (face, r) pairs: "
              + ("undefined" if corr is None else f"{corr:.4f}") + " (seed 004 slides: -0.6591)")
    else:
        result = sweep.sweep_nfe(model, hr, opts, nfes, samplers, device, args.out, embedder, gallery, on_error=failures)
        if result["skipped"]:
            print(f"{len(result['skipped'])} setting(s) skipped; see sweep.json")
    print(f"wrote {', '.join(result['info']['files'])} and sweep.json to {args.out}")
    return 1 if failures else 0  # an input that could not be used was reported above
