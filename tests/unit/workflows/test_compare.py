"""facesr compare: paired comparison of run folders (per_image.csv) on the same probes."""

import csv
import json

import numpy as np
import pytest

from facesr.cli import main


def _run(folder, names, psnr, cs, rank):
    folder.mkdir(parents=True)
    with open(folder / "per_image.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "psnr", "ssim", "cs", "rank", "predicted"])
        for row in zip(names, psnr, np.full(len(names), 0.8), cs, rank, names):
            w.writerow(row)
    return folder


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"person{i:03d}_0002" for i in range(40)]
    base_rank = np.where(rng.random(40) < 0.6, 1, rng.integers(2, 9, 40))
    better_rank = base_rank.copy()
    better_rank[np.flatnonzero(base_rank > 1)[:8]] = 1  # identifies 8 more probes, loses none
    psnr = rng.normal(28, 2, 40)
    cs = rng.normal(0.95, 0.01, 40)
    base = _run(tmp_path / "base", names, psnr, cs, base_rank)
    better = _run(tmp_path / "better", names[::-1], (psnr + 0.5)[::-1], (cs + 0.002)[::-1], better_rank[::-1])
    return tmp_path, base, better, base_rank, better_rank


def test_compare_matches_probes_by_name_and_reports_intervals(runs, capsys):
    tmp_path, base, better, base_rank, better_rank = runs
    assert main(["compare", str(base), f"plus={better}", "-o", str(tmp_path / "cmp")]) == 0
    assert "| plus | " in capsys.readouterr().out
    rows = json.loads((tmp_path / "cmp" / "paired.json").read_text())["rows"]
    assert [r["label"] for r in rows] == ["base", "plus"]
    base_row, row = rows
    assert base_row["rank1"] == pytest.approx(np.mean(base_rank == 1))
    assert row["rank1"] == pytest.approx(np.mean(better_rank == 1))
    # rows were written in reverse order: only matching by name gives these exact per-probe differences
    assert row["psnr_diff"]["mean"] == pytest.approx(0.5) and row["psnr_diff"]["low"] == pytest.approx(0.5)
    assert row["cs_diff"]["mean"] == pytest.approx(0.002)
    assert row["rank1_diff"]["mean"] == pytest.approx(8 / 40) and row["rank1_diff"]["low"] > 0
    assert (row["only_this"], row["only_base"]) == (8, 0)
    assert row["mcnemar_p"] == pytest.approx(2 / 2 ** 8)
    assert base_row["rank1_ci"][0] < base_row["rank1"] < base_row["rank1_ci"][1]
    assert "rank1_diff" not in base_row
    assert "| base |" in (tmp_path / "cmp" / "paired.md").read_text()


def test_compare_a_slice_of_the_probes(runs, capsys):
    tmp_path, base, better, base_rank, better_rank = runs
    assert main(["compare", str(base), str(better), "--slice", "30:", "-o", str(tmp_path / "tail")]) == 0
    rows = json.loads((tmp_path / "tail" / "paired.json").read_text())["rows"]
    assert rows[0]["probes"] == 10 and rows[0]["rank1"] == pytest.approx(np.mean(base_rank[30:] == 1))
    assert rows[1]["only_this"] == int(np.sum((better_rank[30:] == 1) & (base_rank[30:] > 1)))
    assert "person030_0002 to person039_0002 (10 of 40" in capsys.readouterr().out
    # the slice follows the base run's row order (a benchmark's probe order), not the names' order
    assert main(["compare", str(better), str(base), "--slice", "30:", "-o", str(tmp_path / "tail-rev")]) == 0
    rows = json.loads((tmp_path / "tail-rev" / "paired.json").read_text())["rows"]
    assert rows[0]["rank1"] == pytest.approx(np.mean(better_rank[:10] == 1))
    assert rows[1]["only_base"] == int(np.sum((better_rank[:10] == 1) & (base_rank[:10] > 1)))
    assert "person009_0002 to person000_0002 (10 of 40" in capsys.readouterr().out
    assert main(["compare", str(base), str(better), "--slice", "x"]) == 2
    assert main(["compare", str(base), str(better), "--slice", "50:"]) == 2
    err = capsys.readouterr().err
    assert "slice 'x': expected START:STOP" in err and "no probe in 50: of 40" in err


def test_compare_refuses_different_probes_and_missing_files(runs, capsys):
    tmp_path, base, better, *_ = runs
    other = _run(tmp_path / "other", [f"x{i}" for i in range(40)], np.zeros(40), np.zeros(40), np.ones(40, int))
    assert main(["compare", str(base), str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other" in err[0] and "compare runs on the same probes" in err[0]
    assert main(["compare", str(base), str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere/per_image.csv: not found" in err[0]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "per_image.csv").write_text("name,psnr\na,oops\n")
    assert main(["compare", str(tmp_path / "bad"), str(tmp_path / "bad")]) == 2
    assert "column 'psnr' has a non-numeric value" in capsys.readouterr().err


def test_compare_common_probes_of_runs_on_different_sets(runs, capsys):
    """A benchmark of a baseline alone also restores probes without aux images; --common compares the shared ones."""
    tmp_path, base, better, base_rank, better_rank = runs
    keep = np.r_[0:5, 12:40]  # the FASR run lacks probes 5-11
    names = [f"person{i:03d}_0002" for i in keep]
    fasr = _run(tmp_path / "fasr", names, np.full(len(keep), 30.0), np.full(len(keep), 0.96), better_rank[keep])
    assert main(["compare", str(base), str(fasr)]) == 2
    assert "or pass --common" in capsys.readouterr().err
    assert main(["compare", str(base), str(fasr), str(better), "--common", "--slice", "3:", "-o", str(tmp_path / "c")]) == 0
    assert "the 33 of 40 that every run has; probes person003_0002 to person039_0002 (30 of 33" in capsys.readouterr().out
    rows = json.loads((tmp_path / "c" / "paired.json").read_text())["rows"]
    assert [r["probes"] for r in rows] == [30, 30, 30]
    assert rows[0]["rank1"] == pytest.approx(np.mean(base_rank[keep][3:] == 1))
    assert rows[1]["only_this"] == int(np.sum((better_rank[keep][3:] == 1) & (base_rank[keep][3:] > 1)))


def test_a_bad_run_in_a_batch_is_reported_and_the_others_still_compared(runs, capsys):
    tmp_path, base, better, *_ = runs
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    text = (better / "per_image.csv").read_text()
    (truncated / "per_image.csv").write_text(text[: len(text) // 2])  # cut mid-row
    binary = tmp_path / "binary"
    binary.mkdir()
    (binary / "per_image.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    assert main(["compare", str(base), str(truncated), str(better), str(binary), "-o", str(tmp_path / "cmp")]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 2 and "truncated" in err[0] and "binary/per_image.csv" in err[1]
    rows = json.loads((tmp_path / "cmp" / "paired.json").read_text())["rows"]
    assert [r["label"] for r in rows] == ["base", "better"] and (rows[1]["only_this"], rows[1]["only_base"]) == (8, 0)
    assert main(["compare", str(base), str(truncated), str(binary)]) == 2
    assert "none of the 2 runs could be compared" in capsys.readouterr().err
    # with --common too: the bad runs are left out before the shared probes are chosen, so they do not narrow them
    lines = text.splitlines()
    (truncated / "per_image.csv").write_text("\n".join(lines[:20] + [lines[20].rsplit(",", 2)[0]]))  # cut before its rank
    assert main(["compare", str(base), str(truncated), str(better), str(binary), "--common", "-o", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "truncated/per_image.csv: column 'rank' has a non-numeric value" in err[0]
    rows = json.loads((tmp_path / "c" / "paired.json").read_text())["rows"]
    assert [r["probes"] for r in rows] == [40, 40] and (rows[1]["only_this"], rows[1]["only_base"]) == (8, 0)


def test_compare_without_identity_columns_reports_image_metrics_only(tmp_path, capsys):
    names = ["a", "b", "c"]
    for folder, psnr in (("x", [20.0, 21.0, 22.0]), ("y", [21.0, 22.5, 22.0])):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "per_image.csv").write_text("name,psnr\n" + "".join(f"{n},{p}\n" for n, p in zip(names, psnr)))
    assert main(["compare", str(tmp_path / "x"), str(tmp_path / "y")]) == 0
    out = capsys.readouterr().out
    assert "| y | 21.83 | +0.83 [" in out and "| – | – | – |" in out
