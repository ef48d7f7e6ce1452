"""Runs and sweeps on Dask (``proofs_checks.distributed``, ``proofs_checks.sweep``): the same results as in-process,
a killed worker loses nothing, resuming skips finished points, and clear one-line errors.

Every cluster is on 127.0.0.1 only, started and stopped by the test itself, with bounded waits.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ncverify.proofs_checks.cli import main

distributed = pytest.importorskip("distributed", reason="the optional extra: pip install 'ncverify[dask]'")

from ncverify.proofs_checks.distributed import without_timings as stable  # noqa: E402  (drops timing keys only)


# a sweep over dang2023.mse-deep across both of its derived boundaries (lambda_H = 39.06 and 65.92 at depth 2):
# verified, refuted (the published root rule) and inconclusive points, 2 x 8 points
SWEEP = ["sweep", "dang2023.mse-deep", "--grid", "lam-h=20:120:log:8", "--grid", "depth=1..2", "--classes", "2",
         "--per-class", "2", "--width", "2", "--lam-w", "1e-2", "--starts", "3", "--no-figure", "--json"]


def run_sweep_cli(out: Path, *extra: str) -> dict:
    rc = main([*SWEEP, "--out", str(out), *extra])
    assert rc == 0
    return json.loads((out / "sweep.json").read_text())


@pytest.fixture(scope="module")
def in_process_sweep(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("sweep") / "in-process"
    return run_sweep_cli(out, "--batch", "2")


# ---------------------------------------------------------------------------------------------
# a scheduler and two workers started by the test (loopback only)
# ---------------------------------------------------------------------------------------------
class Cluster:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1; every wait bounded."""

    def __init__(self, folder: Path, workers: int = 2, timeout: float = 60.0) -> None:
        self.folder = folder
        self.file = folder / "scheduler.json"
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
        self.procs.append(subprocess.Popen(
            [*dask, "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(self.file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        self._wait(lambda: self.file.exists() and self.file.stat().st_size > 0, timeout, "the scheduler file")
        self.address = json.loads(self.file.read_text())["address"]
        assert self.address.startswith("tcp://127.0.0.1:")
        for i in range(workers):
            w = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                  str(self.file), "--nthreads", "1", "--nworkers", "1", "--no-nanny", "--host",
                                  "127.0.0.1", "--no-dashboard", "--name", f"w{i}"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            self.procs.append(w)
            self.workers.append(w)
        from distributed import Client

        with Client(self.address, timeout=timeout) as c:
            c.wait_for_workers(workers, timeout=timeout)

    @staticmethod
    def _wait(cond, timeout: float, what: str) -> None:
        t0 = time.monotonic()
        while not cond():
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"{what} did not appear within {timeout} s")
            time.sleep(0.1)

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=20)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# same seed, same results
# ---------------------------------------------------------------------------------------------
def _run_both(tmp_path: Path, *argv: str) -> tuple[dict, dict]:
    """results.json of ``ncverify run --budget quick --no-figures ARGV`` in-process and with --workers 2."""
    a, b = tmp_path / "in-process", tmp_path / "workers"
    rc_a = main(["run", "--budget", "quick", "--no-figures", "--out", str(a), *argv])
    rc_b = main(["run", "--budget", "quick", "--no-figures", "--out", str(b), *argv, "--workers", "2"])
    assert rc_a == rc_b
    return tuple(json.loads((p / "results.json").read_text()) for p in (a, b))  # type: ignore[return-value]


def test_run_quick_with_two_local_workers_matches_in_process(tmp_path):
    """Theorems (verified MSE, refuted deep MSE with a shrunk numeric counterexample, a registered loss variant),
    their mutants and their lemmas: results.json identical but for the timings, in-process and on a local cluster
    of two worker processes (the whole catalogue was compared by hand at the quick and default budgets)."""
    ra, rb = _run_both(tmp_path, "--only", "tirer2022.mse-ufm,dang2023.mse-deep,ce-focal")
    assert ra["executor"] == "in-process" and rb["executor"] == "local Dask cluster (2 workers)"
    assert [t["verdict"] for t in ra["theorems"]] == ["refuted", "verified", "verified"]
    assert ra["mutants"]["total"] >= 5 and ra["mutants"]["caught"] == ra["mutants"]["total"] and len(ra["lemmas"]) >= 5
    assert stable(ra) == stable(rb)


def test_run_of_a_theorems_file_on_workers_matches_in_process(tmp_path):
    """A user's file (a new loss registered by the file) is loaded on every worker."""
    path = str(Path(__file__).resolve().parents[1] / "examples" / "ce_temperature.py")
    ra, rb = _run_both(tmp_path, "--theorems", path, "--only", "mine.ce-temperature", "--no-lemmas")
    assert [t["verdict"] for t in ra["theorems"]] == ["verified"]
    assert stable(ra) == stable(rb)


def test_sweep_on_a_scheduler_with_two_workers_matches_in_process(cluster, in_process_sweep, tmp_path):
    got = run_sweep_cli(tmp_path / "dask", "--batch", "2", "--scheduler", cluster.address)
    assert got["executor"] == f"Dask scheduler {cluster.address}"
    assert stable(got) == stable(in_process_sweep)
    v = in_process_sweep["verdicts"]
    assert v["verified"] and v["refuted"]  # the sweep crosses the boundary where the published rule fails


def test_other_batches_give_the_same_verdicts(in_process_sweep, tmp_path):
    """Batches of 5 instead of 2: the same verdicts and derivations; the numeric end points agree to rounding (the
    batched solver's end points differ in their last bits with the batch's composition, e.g. sigma(W) 1.2e-24 vs
    5.1e-25 at a collapsed point: that is why the batch size is part of a sweep's settings)."""
    got = run_sweep_cli(tmp_path / "b5", "--batch", "5")
    for p, q in zip(got["points"], in_process_sweep["points"]):
        assert (p["verdict"], p["derived"], p["claimed"], p["boundaries"]) == \
            (q["verdict"], q["derived"], q["claimed"], q["boundaries"])
        assert p["numeric"]["objective"] == pytest.approx(q["numeric"]["objective"], rel=1e-12, abs=1e-20)
        assert p["numeric"]["sigma_W"] == pytest.approx(q["numeric"]["sigma_W"], rel=1e-7, abs=1e-12)


def test_a_worker_killed_mid_sweep_loses_nothing(cluster, tmp_path):
    """SIGKILL one of the two workers once some points are done: Dask reruns its tasks on the other worker and the
    sweep completes with the in-process results (one point per task)."""
    expected = run_sweep_cli(tmp_path / "in-process", "--batch", "1")
    out = tmp_path / "killed"
    result: dict = {}

    def go() -> None:
        result["rc"] = main([*SWEEP, "--out", str(out), "--batch", "1", "--scheduler", cluster.address])

    t = threading.Thread(target=go, daemon=True)
    t.start()
    points = out / "points.jsonl"
    t0 = time.monotonic()
    while not (points.exists() and len(points.read_text().splitlines()) >= 2):
        assert time.monotonic() - t0 < 120, "no point finished within 120 s"
        assert t.is_alive(), "the sweep ended before the worker could be killed"
        time.sleep(0.05)
    done_at_kill = len(points.read_text().splitlines())
    victim = cluster.workers[0]
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=20)
    assert done_at_kill < 16, "the sweep finished before the kill"
    t.join(timeout=300)
    assert not t.is_alive() and result["rc"] == 0
    assert victim.returncode == -signal.SIGKILL and cluster.workers[1].poll() is None
    got = json.loads((out / "sweep.json").read_text())
    assert stable(got) == stable(expected)


# ---------------------------------------------------------------------------------------------
# resuming
# ---------------------------------------------------------------------------------------------
def test_resuming_skips_finished_points(in_process_sweep, tmp_path, monkeypatch):
    """An interrupted sweep (the first 6 points written, then a line cut short) started again with the same
    directory computes only the other 10 points, and ends with the results of an uninterrupted sweep."""
    from ncverify.proofs_checks import sweep as S

    out = tmp_path / "resumed"
    run_sweep_cli(out, "--batch", "2")
    lines = (out / "points.jsonl").read_text().splitlines()
    (out / "points.jsonl").write_text("\n".join(lines[:6]) + "\n" + lines[6][: len(lines[6]) // 2])
    (out / "sweep.json").unlink()
    computed: list[int] = []
    real = S.sweep_task

    def counting(theorem_id, source, indices, *a, **kw):
        computed.extend(indices)
        return real(theorem_id, source, indices, *a, **kw)

    monkeypatch.setattr(S, "sweep_task", counting)
    got = run_sweep_cli(out, "--batch", "2")
    done_before = {json.loads(line)["index"] for line in lines[:6]}
    assert sorted(computed) == sorted(set(range(16)) - done_before)
    assert got["resumed"] == 6 and got["computed"] == 10
    assert stable(got) == stable(in_process_sweep)


def test_resuming_with_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "s"
    small = ["sweep", "tirer2022.mse-ufm", "--grid", "lam-h=1e-3,1e-2", "--classes", "2", "--per-class", "2",
             "--out", str(out)]
    assert main(small) == 0
    assert capsys.readouterr().out.strip().endswith(f"results: {out}/sweep.json, {out}/phase_diagram.png")
    assert (out / "phase_diagram.png").stat().st_size > 10_000
    assert main([*small, "--seed", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "other settings (seed differ)" in err and "another --out" in err


# ---------------------------------------------------------------------------------------------
# errors: one line, exit code 2, before any work
# ---------------------------------------------------------------------------------------------
def test_an_unreachable_scheduler_is_one_line(tmp_path, capsys, monkeypatch):
    from ncverify.proofs_checks import distributed as D

    monkeypatch.setattr(D, "CONNECT_TIMEOUT", 2.0)
    t0 = time.monotonic()
    rc = main(["run", "--budget", "quick", "--only", "tirer2022.mse-ufm", "--no-figures", "--no-lemmas", "--out",
               str(tmp_path / "r"), "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0
    assert err.startswith("ncverify: error: cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 2 s")
    assert time.monotonic() - t0 < 30


def test_without_dask_the_flags_say_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    rc = main([*SWEEP, "--out", str(tmp_path / "s"), "--workers", "2"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "pip install 'ncverify[dask]'" in err
    assert not (tmp_path / "s" / "points.jsonl").exists()
    # the in-process default needs no Dask
    assert main(["sweep", "tirer2022.mse-ufm", "--grid", "lam-h=1e-3,1e-2", "--classes", "2", "--per-class", "2",
                 "--no-figure", "--out", str(tmp_path / "t")]) == 0


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "--workers: must be an integer from 1 to 256"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "not allowed with argument"),
    (["--grid", "lam-h=1e-3:1e-1:log:0"], "number of values must be from 1"),
    (["--grid", "lam-h=-1:1:log:4"], "a log axis needs positive ends"),
    (["--grid", "depth=1.5,2"], "depth takes integers"),
    (["--grid", "depth=3..1"], "empty range"),
    (["--grid", "speed=1,2"], "unknown axis"),
    (["--grid", "lam-h"], "expected NAME=VALUES"),
    (["--grid", "depth=1,2", "--grid", "depth=3"], "given twice"),
    (["--grid", "depth=1,2", "--grid", "width=2,3", "--grid", "lam-w=1e-3"], "at most 2 --grid axes"),
    (["--grid", "width=2,5000000"], "grid point width=5000000: the instance has 30000000 parameters"),
    (["--grid", "classes=2,3"], "needs the fixed instance as --classes K --per-class n"),
    (["--batch", "0"], "--batch must be an integer >= 1"),
    ([], "give at least one --grid"),
])
def test_bad_sweep_input_is_one_line(argv, message, tmp_path, capsys):
    base = ["sweep", "tirer2022.mse-ufm", "--counts", "2,2", "--out", str(tmp_path / "s"), "--no-figure"]
    if not any(a.startswith("--grid") for a in argv) and message != "give at least one --grid":
        argv = [*argv, "--grid", "lam-h=1e-3,1e-2"]
    rc = main([*base, *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and message in err, err
    assert not (tmp_path / "s" / "points.jsonl").exists()


def test_a_point_outside_the_theorem_is_refused_before_any_work(tmp_path, capsys):
    """tirer2022.mse-ufm is stated for depth 1: a depth axis beyond it names the first invalid point."""
    rc = main(["sweep", "tirer2022.mse-ufm", "--grid", "depth=1..3", "--counts", "2,2", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "grid point depth=2:" in err
    assert not (tmp_path / "s").exists() or not (tmp_path / "s" / "points.jsonl").exists()


# ---------------------------------------------------------------------------------------------
# the grid, the figure, the API
# ---------------------------------------------------------------------------------------------
def test_axes_parse_to_the_values_asked_for():
    from ncverify.proofs_checks.sweep import parse_axis

    a = parse_axis("lam-h=1e-4:1e-1:log:4")
    assert a.log and a.values[0] == 1e-4 and a.values[-1] == 1e-1 and len(a.values) == 4
    assert a.values[1] == pytest.approx(1e-3, rel=1e-12) and a.values[2] == pytest.approx(1e-2, rel=1e-12)
    assert parse_axis("lam-w=0:1:lin:5").values == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert parse_axis("depth=1..6").values == (1, 2, 3, 4, 5, 6)
    assert parse_axis("width=4,8,16").values == (4, 8, 16)
    assert parse_axis("depth=1:6:lin:11").values == (1, 2, 3, 4, 5, 6)  # integer axes: distinct integers


def test_points_are_row_major_and_the_figures_are_drawn(in_process_sweep, tmp_path):
    from ncverify.proofs_checks.figures import sweep_figure

    pts = in_process_sweep["points"]
    assert [p["index"] for p in pts] == list(range(16))
    assert [p["values"]["depth"] for p in pts[:3]] == [1, 2, 1]  # the first axis (lam-h) varies slowest
    assert all(p["boundaries"]["lam_h"] for p in pts)  # mse-deep's derived boundaries through every point
    depth2 = [p for p in pts if p["values"]["depth"] == 2]
    assert depth2[0]["boundaries"]["lam_h"] == pytest.approx([39.0625, 65.91796875], rel=1e-12)
    for p in pts:
        assert p["reproduce"].startswith("ncverify check dang2023.mse-deep ") and "--starts 3" in p["reproduce"]
        lam_h = p["values"]["lam-h"]
        if p["values"]["depth"] == 2 and 39.0625 < lam_h < 65.91796875:  # the published rule's wrong branch
            assert p["verdict"] == "refuted", p
    path = sweep_figure(in_process_sweep, tmp_path / "two.png")
    assert path and Path(path).stat().st_size > 10_000
    one = {**in_process_sweep, "spec": {**in_process_sweep["spec"], "axes": in_process_sweep["spec"]["axes"][:1]},
           "points": depth2}
    path = sweep_figure(one, tmp_path / "one.png")
    assert path and Path(path).stat().st_size > 10_000


def test_the_api_sweep_matches_the_command_line(in_process_sweep, tmp_path):
    """The same sweep from Python, and resumed from Python in the command line's directory (1e-2 is 0.01)."""
    import ncverify as nv

    kw = dict(classes=2, per_class=2, width=2, lam_w=1e-2, starts=3, batch=2, figure=False)
    got = nv.sweep("dang2023.mse-deep", ["lam-h=20:120:log:8", "depth=1..2"], out=tmp_path / "api", **kw)
    assert stable(got["points"]) == stable(in_process_sweep["points"])
    cli_dir = tmp_path / "cli"
    run_sweep_cli(cli_dir, "--batch", "2")
    again = nv.sweep("dang2023.mse-deep", ["lam-h=20:120:log:8", "depth=1..2"], out=cli_dir, **kw)
    assert again["resumed"] == 16 and again["computed"] == 0


def test_without_timings_drops_only_the_timing_keys():
    data = {"seconds": 1.0, "points": [{"seconds": 2.0, "verdict": "refuted", "numeric": {"objective": 0.5}}],
            "executor": "in-process", "seed": 0}
    assert stable(data) == {"points": [{"verdict": "refuted", "numeric": {"objective": 0.5}}], "seed": 0}


def test_a_theorems_file_travels_as_text(tmp_path):
    """A worker without the user's file loads the theorems from the text the task carries."""
    from ncverify.proofs_checks import distributed as D

    src = Path(__file__).resolve().parents[1] / "examples" / "ce_temperature.py"
    source = (str(tmp_path / "gone" / "mine.py"), src.read_text())  # a path that does not exist here
    th = D.resolve_theorem("mine.ce-temperature", source)
    assert th.id == "mine.ce-temperature"
    assert D.resolve_theorem("mine.ce-temperature", source) is th  # loaded once per process
