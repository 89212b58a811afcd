"""facesr command line: one module per command (``HELP``, ``add_arguments(parser)``, ``run(args)``),
each mapping flags to library calls. Only the command being run has its arguments built, so
``facesr --help`` and ``facesr --version`` import no torch. Every user mistake becomes one line on
stderr and exit code 2."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from facesr.errors import FacesrError

EXIT_USER_ERROR = 2
COMMANDS = ("demo", "upscale", "restore", "report", "evaluate", "sweep", "benchmark", "compare", "features", "prepare", "prepare-video",
            "train", "train-embedder", "export", "models", "serve")


def command_module(name: str):
    return importlib.import_module(f"facesr.cli.{name.replace('-', '_')}")


def build_parser(full: str | None = None) -> argparse.ArgumentParser:
    """The parser; only command ``full`` gets its arguments (None: the summary of commands)."""
    parser = argparse.ArgumentParser(prog="facesr", description="Identity-preserving face super-resolution.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    for name in COMMANDS:
        module = command_module(name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP, **getattr(module, "PARSER_OPTIONS", {}))
        if name == full:
            module.add_arguments(p)
    return parser


class Terminated(BaseException):
    """SIGTERM, raised where the command is, so its temporary files are removed as on Ctrl-C."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    if args.version:
        from facesr._version import __version__

        print(__version__)
        return 0
    if not args.command:
        build_parser().print_help()
        return EXIT_USER_ERROR
    main_thread = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None  # training installs its own
    try:
        from facesr.runtime import configure_cpu

        configure_cpu()
        return command_module(args.command).run(args) or 0
    except FacesrError as exc:
        print(f"facesr {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"facesr {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"facesr {args.command}: terminated", file=sys.stderr)
        return 143
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, before)
