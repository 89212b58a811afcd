"""Score calibration: what a judge's cosine score means as a false-match rate.

From genuine and impostor scores of development data, ``Calibration.fmr(score)`` is the fraction of
impostor comparisons that score at least as high: the rate at which a different person would reach that
score. Scores are kept as histograms (bins of 0.001 over [-1, 1]), so a calibration is a small JSON file.
The bundled files (``calibrations/<judge>.json``) are made by ``benchmarks/calibrate.py`` on dev/lfw and
dev/celeba HR chips (probe against the gallery of its own set).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facesr.errors import FacesrError

BINS = 2000  # over [-1, 1]
HERE = Path(__file__).resolve().parent / "calibrations"


def _histogram(scores) -> np.ndarray:
    scores = np.clip(np.asarray(scores, np.float64).ravel(), -1, 1)
    return np.bincount(np.minimum(((scores + 1) / 2 * BINS).astype(int), BINS - 1), minlength=BINS)


@dataclass
class Calibration:
    judge: str  # the embedder's name
    source: str  # what the scores came from
    genuine: np.ndarray = field(repr=False)  # histogram counts, BINS bins over [-1, 1]
    impostor: np.ndarray = field(repr=False)

    @classmethod
    def fit(cls, judge: str, source: str, genuine_scores, impostor_scores) -> "Calibration":
        if not len(np.ravel(genuine_scores)) or not len(np.ravel(impostor_scores)):
            raise FacesrError("a calibration needs genuine and impostor scores")
        return cls(judge, source, _histogram(genuine_scores), _histogram(impostor_scores))

    @property
    def comparisons(self) -> tuple[int, int]:
        return int(self.genuine.sum()), int(self.impostor.sum())

    def _at_least(self, counts: np.ndarray, score: float) -> float:
        b = min(int((np.clip(score, -1, 1) + 1) / 2 * BINS), BINS - 1)
        return float(counts[b:].sum() / counts.sum())

    def fmr(self, score: float) -> float:
        """Fraction of impostor comparisons scoring at least ``score`` (at the bin's resolution)."""
        return self._at_least(self.impostor, score)

    def fmr_text(self, score: float) -> str:
        """The false-match rate in words, with the floor the number of comparisons sets."""
        n = self.comparisons[1]
        rate = self.fmr(score)
        return f"< 1 in {n:,}" if rate == 0 else f"1 in {max(1, round(1 / rate)):,}"

    def tmr(self, score: float) -> float:
        """Fraction of genuine comparisons scoring at least ``score``."""
        return self._at_least(self.genuine, score)

    def to_dict(self) -> dict:
        return {"judge": self.judge, "source": self.source, "bins": BINS,
                "genuine": self.genuine.tolist(), "impostor": self.impostor.tolist()}

    @classmethod
    def from_dict(cls, data: dict, where: str = "calibration") -> "Calibration":
        try:
            if data["bins"] != BINS:
                raise FacesrError(f"{where}: {data['bins']} bins, expected {BINS}")
            genuine, impostor = (np.asarray(data[k], np.int64) for k in ("genuine", "impostor"))
            if genuine.shape != (BINS,) or impostor.shape != (BINS,) or genuine.sum() < 1 or impostor.sum() < 1:
                raise FacesrError(f"{where}: histograms must have {BINS} non-empty bins")
            return cls(str(data["judge"]), str(data["source"]), genuine, impostor)
        except (KeyError, TypeError, ValueError) as exc:
            raise FacesrError(f"{where}: not a facesr calibration ({exc})") from None

    def save(self, path) -> None:
        from facesr.io.images import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict()) + "\n")


def load_calibration(path) -> Calibration:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise FacesrError(f"{path}: cannot read the calibration ({exc.strerror or exc})") from None
    except ValueError:
        raise FacesrError(f"{path}: not JSON") from None
    return Calibration.from_dict(data, str(path))


def bundled_calibration(judge: str) -> Calibration | None:
    """The calibration shipped for judge network ``judge`` (an embedder name), or None."""
    path = HERE / f"{judge}.json"
    return load_calibration(path) if path.is_file() else None
