"""facesr models"""

HELP = "list the bundled models and identity networks"


def add_arguments(p) -> None:
    pass


def run(args) -> int:
    from facesr.methods.hub import DEFAULT_MODEL, bundled_models

    rows = bundled_models()
    if not rows:
        print("no bundled models installed")
        return 0
    print(f"{'name':<20} {'method':<10} {'scale':<6} {'input':<8} {'output':<8} {'LR protocol':<12} {'identity':<12} "
          f"{'size':<9} recommended sampling")
    for r in rows:
        recipe = ", ".join(f"{k} {v}" for k, v in r["sampling"].items() if k != "draws") or "-"
        if r["sampling"].get("draws"):
            recipe += "; report's draws: " + ", ".join(f"{k} {v}" for k, v in r["sampling"]["draws"].items())
        print(f"{r['name']:<20} {r['method']:<10} x{r['scale']:<5} {r['input']:<8} {r['output']:<8} {r['operator']:<12} "
              f"{r['identity']:<12} {str(r['size_mb']) + ' MB':<9} {recipe}")
    print(f"default of upscale, report and the Python API: {DEFAULT_MODEL} (restore chooses by face size)")
    from facesr.identity.student import bundled_students

    for s in bundled_students():
        print(f"identity network {s['spec']} ({s['name']}): dlib's ResNet fine-tuned for {s['operator']} x{s['scale']} "
              f"faces, {s['size_mb']} MB; use it with --refs-embedder / embedder= / --identity")
    return 0
