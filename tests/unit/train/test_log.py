"""log.csv after a resume: the rows after the checkpoint's step are dropped, atomically."""

from facesr.train.loop import LOG_HEADER, truncate_log, _Log

HEADER = ",".join(LOG_HEADER) + "\r\n"


def rows(*steps) -> str:
    return "".join(f"{s},0.{s},1.000e-03,2.000,{s}.5\r\n" for s in steps)


def test_rows_after_the_step_are_dropped(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes((HEADER + rows(1, 2, 3, 4) + "5,0.1,1e-3").encode())  # the last line cut short by a kill
    assert truncate_log(path, 2) == 2.5
    assert path.read_bytes().decode() == HEADER + rows(1, 2)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_step_zero_keeps_only_the_header(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(HEADER + rows(1, 2))
    assert truncate_log(path, 0) == 0.0
    assert path.read_bytes().decode() == HEADER


def test_an_untouched_log_is_not_rewritten(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes((HEADER + rows(1, 2)).encode())
    before = path.stat().st_mtime_ns, path.stat().st_ino
    assert truncate_log(path, 5) == 2.5
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before


def test_no_log_yet(tmp_path):
    assert truncate_log(tmp_path / "log.csv", 3) == 0.0
    assert not (tmp_path / "log.csv").exists()


def test_logger_appends_after_the_kept_rows(tmp_path):
    (tmp_path / "log.csv").write_bytes((HEADER + rows(1, 2, 3)).encode())

    class Bar:
        def set_postfix(self, **kw):
            pass

    log = _Log(tmp_path, True, step=2)
    log.step(3, 0.25, 1e-3, True, Bar())
    log.close()
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["step", "1", "2", "3"]
    assert lines[-1].startswith("3,0.250000,1.000e-03,") and float(lines[-1].split(",")[4]) >= 2.5
