"""Results kept across runs: a long benchmark appends each finished result to a JSON-lines file as soon as it
exists, and a run started again with the same settings takes those results back instead of redoing them. A line
cut by a kill costs only itself."""

from __future__ import annotations

import json
import os
from pathlib import Path


class ResultLog:
    """Finished results by key (a tuple of JSON values), one JSON line each, kept only under equal ``settings``.
    ``path`` None keeps them in memory only; ``overwrite`` deletes the file first."""

    def __init__(self, path: Path | None, settings: dict, overwrite: bool = False):
        self.path, self.settings, self.done = path, settings, {}
        if path is None:
            return
        if overwrite:
            path.unlink(missing_ok=True)
        elif path.is_file():
            text = path.read_text()
            for line in text.splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
                if isinstance(rec, dict) and rec.get("settings") == settings and "key" in rec:
                    self.done[tuple(rec["key"])] = rec["result"]
            if text and not text.endswith("\n"):  # end the cut line, so that the next record starts a line of its own
                with open(path, "a") as f:
                    f.write("\n")

    def get(self, key: tuple) -> dict | None:
        return self.done.get(tuple(key))

    def add(self, key: tuple, result: dict) -> None:
        self.done[tuple(key)] = result
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            record = {"settings": self.settings, "key": list(key), "result": result}
            with open(self.path, "a") as f:  # one line per record: a kill loses at most the line being written
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
