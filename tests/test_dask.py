"""``sweep --executor dask``: a real Dask cluster gives the serial results; a dying worker costs only its
own case; Ctrl-C cancels what is pending; without Dask, exit 2 with the pip command.

Two clusters: a :class:`~distributed.LocalCluster` that :func:`run_dask` starts itself, and one started
like a user would, with the ``dask scheduler`` and ``dask worker`` commands, with the settings
docs/cluster.md asks for. Every wait is bounded.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from dask_helpers import die_on_deadly, is_deadly, is_stalling, stall_once

from rnn_parity import dask_executor
from rnn_parity.config import load_cases
from rnn_parity.sweep import run_case

from conftest import invoke

CONFIG = """
defaults: {N: 2, D: 2, M: 3, K: 2}
grid:
  cell: [simple_rnn, gru]
  T: [2, 3, 5]
"""

#: What differs from run to run: wall times, and how many processes ran the sweep.
TIMING = {"seconds", "check_seconds"}
BIN = Path(sys.executable).parent
TESTS = Path(__file__).parent
#: The cluster settings docs/cluster.md gives for `dask scheduler` and `dask worker`.
CLUSTER_ENV = {
    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1",
    "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
    "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON": '{"OMP_NUM_THREADS": None, "MKL_NUM_THREADS": None, '
    '"OPENBLAS_NUM_THREADS": None}',
}


def without_timing(report: dict) -> dict:
    cases = [{k: v for k, v in case.items() if k not in TIMING} for case in report["cases"]]
    summary = {k: v for k, v in report["summary"].items() if k not in ("seconds", "workers")}
    return {**report, "cases": cases, "summary": summary}


def same_numbers(a, b) -> bool:
    """Two outcomes of one case agree on everything but wall times."""
    strip = lambda o: {k: v for k, v in (o.report or {}).items() if k != "seconds"}
    return (a.index, a.status, a.error, strip(a)) == (b.index, b.status, b.error, strip(b))


@pytest.fixture
def deadline():
    """Fail a test that runs longer than its bound (SIGALRM raises in the main thread)."""

    def expire(signum, frame):
        raise TimeoutError("the test ran past its deadline")

    previous = signal.signal(signal.SIGALRM, expire)
    yield lambda seconds: signal.alarm(seconds)
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# ----- without Dask -----
def test_without_dask_the_dask_executor_is_exit_2_with_the_pip_command(cfg, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # what `import distributed` meets when not installed
    result = invoke(["sweep", cfg(CONFIG), "--executor", "dask"], 2)
    assert result.stderr == (
        "Error: --executor dask needs Dask's distributed scheduler: pip install 'rnn-parity[dask]'\n"
    )
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scheduler", "tcp://127.0.0.1:8786"], "--scheduler needs --executor dask"),
        (
            ["--executor", "dask", "--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"],
            "--workers sizes a local cluster; with --scheduler the cluster's own workers run the cases",
        ),
        (["--executor", "ray"], "Invalid value for '--executor': 'ray' is not one of 'local', 'dask'."),
    ],
)
def test_executor_option_errors(cfg, args, message):
    result = invoke(["sweep", cfg(CONFIG), *args], 2)
    assert result.stderr == f"Error: {message}\n"


def test_a_scheduler_nobody_answers_is_exit_2(cfg, monkeypatch):
    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT", 2.0)
    result = invoke(["sweep", cfg(CONFIG), "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"], 2)
    assert result.stderr.startswith("Error: --scheduler tcp://127.0.0.1:9: cannot connect (")
    assert len(result.stderr.splitlines()) == 1


# ----- a local cluster started by the sweep -----
@pytest.mark.keras
def test_local_cluster_gives_the_serial_outcomes_and_a_case_that_kills_its_workers_is_only_its_error(
    tmp_path, capfd, deadline
):
    (tmp_path / "c.yaml").write_text(CONFIG)
    cases = load_cases([str(tmp_path / "c.yaml")])
    serial = [run_case(i, case.spec) for i, case in enumerate(cases)]
    capfd.readouterr()
    deadline(300)
    outcomes, seen = {}, []
    interrupted, stopped, workers = dask_executor.run_dask(
        cases, outcomes, workers=2, scheduler=None, fail_fast=False, on_done=lambda c, o: seen.append(c.name),
        run=die_on_deadly,
    )  # fmt: skip
    assert (interrupted, stopped, workers) == (False, False, 2)
    assert sorted(seen) == sorted(c.name for c in cases)
    for i, case in enumerate(cases):
        if is_deadly(case.spec):
            assert (outcomes[i].status, outcomes[i].error) == ("error", dask_executor.WORKER_DIED_TWICE)
        else:
            assert same_numbers(outcomes[i], serial[i]), case.name
    # the cluster is closed and nothing of Dask's or TensorFlow's reached stderr, from any process
    assert capfd.readouterr().err == ""
    import psutil

    children = [p.cmdline() for p in psutil.Process().children(recursive=True) if p.status() != "zombie"]
    assert [c for c in children if "multiprocessing.resource_tracker" not in " ".join(c)] == []  # (it stays)


# ----- a cluster started with the `dask` command line -----
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``dask scheduler`` and two ``dask worker --nthreads 1`` on 127.0.0.1; yields the scheduler's address."""
    from distributed import Client

    folder = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, **CLUSTER_ENV, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    log = open(folder / "cluster.log", "w")  # noqa: SIM115 - closed at teardown
    common = {"env": env, "stdout": log, "stderr": subprocess.STDOUT, "cwd": folder, "start_new_session": True}
    file = folder / "scheduler.json"
    processes = [
        subprocess.Popen(
            [
                BIN / "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                file,
            ],
            **common,
        )  # fmt: skip
    ]
    try:
        for _ in range(600):
            if file.exists() and file.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        for name in ("worker-a", "worker-b"):
            processes.append(
                subprocess.Popen(
                    [BIN / "dask", "worker", address, "--nthreads", "1", "--no-dashboard", "--name", name], **common
                )
            )
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=180)
        yield address
    finally:  # the workers first, while their scheduler is there to say goodbye to
        for group in (processes[1:], processes[:1]):
            for p in group:
                p.terminate()
            for p in group:
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:  # e.g. a worker still importing TensorFlow
                    os.killpg(p.pid, signal.SIGKILL)  # the nanny and its worker process
                    p.wait()
        log.close()


@pytest.mark.keras
def test_a_sweep_on_a_dask_cli_cluster_gives_the_serial_report_and_keeps_stderr_to_progress(cfg, cluster, deadline):
    deadline(300)
    name = cfg(CONFIG)
    invoke(["sweep", name, "--json", "serial.json"], 0)
    result = subprocess.run(
        [BIN / "rnn-parity", "sweep", name, "--executor", "dask", "--scheduler", cluster, "--json", "dask.json"],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    serial, dask = (json.loads(Path(f).read_text()) for f in ("serial.json", "dask.json"))
    assert dask["summary"]["workers"] == 2
    assert without_timing(dask) == without_timing(serial)  # every case, every layer, every number
    lines = result.stderr.splitlines()
    assert len(lines) == 6 and all(line.startswith(f"[{i}/6] PASS ") for i, line in enumerate(lines, 1)), lines
    assert result.stdout.splitlines()[-1] == "6 passed, 0 failed, 0 errors"


@pytest.mark.keras
def test_killing_a_worker_mid_case_loses_no_case(tmp_path, cluster, deadline):
    deadline(300)
    (tmp_path / "c.yaml").write_text(CONFIG)
    cases = load_cases([str(tmp_path / "c.yaml")])
    folder = tmp_path / "signals"
    folder.mkdir()

    def kill_the_stalled_worker():
        marker = folder / "stalled"
        for _ in range(2400):
            if marker.exists() and marker.read_text():
                os.kill(int(marker.read_text()), signal.SIGKILL)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_the_stalled_worker, daemon=True)
    killer.start()
    outcomes = {}
    interrupted, stopped, workers = dask_executor.run_dask(
        cases, outcomes, workers=1, scheduler=cluster, fail_fast=False, on_done=lambda c, o: None,
        run=functools.partial(stall_once, str(folder)),
    )  # fmt: skip
    killer.join(timeout=5)
    assert (interrupted, stopped, workers) == (False, False, 2)
    assert {cases[i].name: o.status for i, o in outcomes.items()} == {c.name: "pass" for c in cases}
    [stalled] = [i for i, c in enumerate(cases) if is_stalling(c.spec)]
    assert same_numbers(outcomes[stalled], run_case(stalled, cases[stalled].spec))
    first, second = (folder / "attempts").read_text().split()
    assert first == (folder / "stalled").read_text() and second != first  # killed, then run by another process


@pytest.mark.keras
def test_ctrl_c_cancels_the_pending_cases_writes_the_partial_reports_and_exits_130(cfg, cluster, monkeypatch, deadline):
    from distributed import Client

    from rnn_parity.progress import SweepProgress

    deadline(300)
    advance = SweepProgress.advance

    def interrupt_after_two(self, case, outcome):
        advance(self, case, outcome)
        if self.done == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(SweepProgress, "advance", interrupt_after_two)
    args = ["sweep", cfg(CONFIG), "--executor", "dask", "--scheduler", cluster, "--json", "r.json"]
    result = invoke([*args, "--junit-xml", "r.xml"], 130)
    assert result.stdout.splitlines()[-2:] == ["interrupted: 4 of 6 cases did not run", "2 passed, 0 failed, 0 errors"]
    report = json.loads(Path("r.json").read_text())
    assert (len(report["cases"]), len(report["not_run"]), report["summary"]["exit_code"]) == (2, 4, 130)
    assert 'message="not run: interrupted"' in Path("r.xml").read_text()
    with Client(cluster, timeout=30) as client:  # the cancelled cases leave the scheduler
        for _ in range(300):
            if not client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):
                break
            time.sleep(0.1)
        assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0
