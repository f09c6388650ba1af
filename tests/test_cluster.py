"""The runner on a real Dask ``LocalCluster`` (2 worker processes): same table as the local
runner, nothing lost when a worker process is killed mid-task or the client is interrupted,
a clear error in seconds for a scheduler that does not answer.

Runs everywhere with the replay stand-ins (recorded real OpenFace outputs, see
tests/test_openface_runner.py and tests/test_video.py); the tests marked ``openface`` repeat
the comparison with the real OpenFace of ``$OPENFACE_BIN``. One cluster serves the module.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import distributed
import pandas as pd
import pytest

from openface_runner.backends import DockerBackend, NativeBackend, RunFolders
from openface_runner.cli import main
from openface_runner.cluster import connect, cpu_plan, image_task, scheduler_arg
from openface_runner.inputs import discover
from openface_runner.runner import cpu_shares, failures_path, run_openface
from openface_runner.video import run_sequences
from tests.conftest import FIXTURES

OPENFACE = FIXTURES / "openface"
VIDEO = OPENFACE / "video"
ROOT = Path(__file__).resolve().parent.parent
BIN = os.environ.get("OPENFACE_BIN", "")
BATCH = 8  # 30 replay images: 4 tasks, 2 per worker
ARGS = ["-mloc", "model/main_clnf_general.txt"]  # the installed models (as tests/test_openface_real.py)
NO_OPENFACE = "needs a native OpenFace 2.2.0 in $OPENFACE_BIN (none here; .ci/run installs it)"


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 worker processes, one thread each, and a client on it."""
    import logging

    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client


@pytest.fixture
def faces(tmp_path) -> Path:
    root = tmp_path / "faces"
    shutil.copytree(OPENFACE / "replay" / "input", root)
    return root


KINDS = [
    "stand-in",
    pytest.param("real", marks=[pytest.mark.openface, pytest.mark.skipif(not BIN, reason=NO_OPENFACE)]),
]


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    """The replay stand-in (everywhere) or the real OpenFace of ``$OPENFACE_BIN``."""
    return request.param


def write_openface(path: Path, faces: Path, kind: str, before: str = "", delay: float = 0.0) -> NativeBackend:
    """A ``FaceLandmarkImg`` script: the replay stand-in (recorded outputs) or the real one.

    Its environment is in the script, since the cluster's worker processes were started before
    the test. ``before``: shell run first; ``delay``: seconds per call (real) or per image (stand-in).
    """
    if kind == "real":
        run = f'sleep {delay}\ncd "{Path(BIN).parent}" && exec "{BIN}" "$@"\n'
    else:
        run = (
            f'REPLAY_INPUT_ROOT="{faces}" REPLAY_RECORDED="{OPENFACE / "replay" / "output"}" '
            f'REPLAY_DELAY={delay} PYTHONPATH="{ROOT}" '
            f'exec "{sys.executable}" "{OPENFACE / "replay_openface.py"}" "$@"\n'
        )
    path.write_text(f"#!/bin/sh\n{before}\n{run}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return NativeBackend(path, ARGS if kind == "real" else ())


def set_worker_env(client, name: str, value: str | None) -> None:
    """Set (None: remove) an environment variable in every worker process."""

    def change() -> None:  # nested: pickled by value, runs against the worker's os.environ
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

    client.run(change)


REFERENCES: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}


def reference(faces: Path, backend, tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The local runner's table and failures on the replay images (once per kind of OpenFace)."""
    kind = "real" if backend.extra else "stand-in"
    if kind not in REFERENCES:
        out = tmp_path / "local" / "aus.csv"
        run_openface(faces, out, backend, workers=2, batch_size=BATCH, progress=False)
        REFERENCES[kind] = pd.read_csv(out), pd.read_csv(failures_path(out))
    return REFERENCES[kind]


def assert_same(out: Path, expected: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    pd.testing.assert_frame_equal(pd.read_csv(out), expected[0])
    pd.testing.assert_frame_equal(pd.read_csv(failures_path(out)), expected[1])


def test_scheduler_argument():
    assert scheduler_arg("local:2") == "local:2"
    assert scheduler_arg("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    for bad in ("local:0", "local", "host:8786", ""):
        with pytest.raises(Exception, match="expected local:N"):
            scheduler_arg(bad)


def test_dask_gives_the_local_runners_table(cluster, faces, tmp_path, kind):
    backend = write_openface(tmp_path / "FaceLandmarkImg", faces, kind)
    expected = reference(faces, backend, tmp_path)
    out = tmp_path / "dask" / "aus.csv"
    summary = run_openface(
        faces, out, backend, batch_size=BATCH, progress=False, scheduler=cluster.scheduler.address
    )
    assert summary.rows == len(expected[0]) > 20 and summary.workers == 2 and summary.batches > 2
    assert_same(out, expected)
    logs = sorted(p.name for p in (out.parent / "aus.csv.run" / "logs").iterdir())
    assert len(logs) == 2 and all(name.startswith("worker-dask-") for name in logs)  # one per worker


def test_worker_killed_mid_task_loses_nothing(cluster, faces, tmp_path, kind):
    """The first OpenFace call hangs; its worker process is SIGKILLed; Dask reruns the batch elsewhere."""
    mark = tmp_path / "hang"
    hang = (
        f'if mkdir "{mark}.lock" 2>/dev/null; then echo "$PPID $$" > "{mark}.tmp"; mv "{mark}.tmp" "{mark}"; '
        "sleep 60; fi"
    )
    backend = write_openface(tmp_path / "FaceLandmarkImg", faces, kind, before=hang)
    os.makedirs(f"{mark}.lock")  # the reference run first, without the hang
    expected = reference(faces, backend, tmp_path)
    os.rmdir(f"{mark}.lock")
    killed: list[int] = []

    def kill() -> None:
        deadline = time.monotonic() + 60
        while not mark.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        worker_pid, call_pid = map(int, mark.read_text().split())
        assert worker_pid in cluster.run(os.getpid).values()  # the task runs in a worker process
        os.kill(worker_pid, signal.SIGKILL)
        os.killpg(call_pid, signal.SIGKILL)  # its orphaned OpenFace call (own process group)
        killed.append(worker_pid)

    killer = threading.Thread(target=kill)
    killer.start()
    out = tmp_path / "dask" / "aus.csv"
    run_openface(faces, out, backend, batch_size=BATCH, progress=False, scheduler=cluster.scheduler.address)
    killer.join()
    assert killed
    assert_same(out, expected)
    cluster.wait_for_workers(2, timeout=30)  # the nanny restarts it for the next tests


def test_interrupted_client_resumes_on_rerun(cluster, faces, tmp_path, kind):
    stand_in = tmp_path / "FaceLandmarkImg"
    backend = write_openface(stand_in, faces, kind)
    expected = reference(faces, backend, tmp_path)
    write_openface(stand_in, faces, kind, delay=0.3 if kind == "stand-in" else 0.5)
    out = tmp_path / "dask" / "aus.csv"
    command = [sys.executable, "-m", "openface_runner", "run", "--in", str(faces), "--out", str(out)]
    command += ["--backend", "native", "--openface-bin", str(stand_in), "--batch-size", "4", "--quiet"]
    command += ["--scheduler", cluster.scheduler.address, "--openface-args", " ".join(backend.extra)]
    client = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    done = out.parent / "aus.csv.run" / "done"
    deadline = time.monotonic() + 60
    while not list(done.glob("*_of_details.txt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    client.send_signal(signal.SIGTERM)
    _, stderr = client.communicate(timeout=30)
    assert client.returncode == 128 + signal.SIGTERM, stderr
    assert "rerun the same command to resume" in stderr and not out.exists()
    write_openface(stand_in, faces, kind)
    summary = run_openface(
        faces, out, backend, batch_size=4, progress=False, scheduler=cluster.scheduler.address
    )
    assert 0 < summary.processed_now < summary.inputs
    assert_same(out, expected)


def test_unreachable_scheduler_fails_in_seconds(faces, tmp_path, capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stand_in = write_openface(tmp_path / "FaceLandmarkImg", faces, "stand-in").binary
    started = time.monotonic()
    code = main(
        ["run", "--in", str(faces), "--out", str(tmp_path / "aus.csv"), "--backend", "native"]
        + ["--openface-bin", str(stand_in), "--quiet", "--scheduler", f"tcp://127.0.0.1:{port}"]
    )
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - started < 15
    assert (
        err.startswith(f"error: Dask scheduler tcp://127.0.0.1:{port} does not answer")
        and err.count("\n") == 1
    )


@pytest.fixture
def peer():
    """A loopback TCP server that accepts and then stays silent, or answers HTTP bytes."""
    servers = []

    def start(answer: bytes | None) -> int:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def serve() -> None:
            with contextlib.suppress(OSError):
                while True:
                    conn, _ = server.accept()
                    servers.append(conn)
                    if answer is not None:
                        conn.sendall(answer)

        threading.Thread(target=serve, daemon=True).start()
        return server.getsockname()[1]

    yield start
    for sock in servers:
        sock.close()


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (None, "does not answer within 5 s"),  # an HTTP server waiting for a request
        (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 50, "not as a Dask scheduler"),
    ],
    ids=["silent", "not-dask"],
)
def test_peer_that_is_not_a_dask_scheduler_fails_in_seconds(faces, tmp_path, capsys, peer, answer, says):
    port = peer(answer)
    stand_in = write_openface(tmp_path / "FaceLandmarkImg", faces, "stand-in").binary
    started = time.monotonic()
    code = main(
        ["run", "--in", str(faces), "--out", str(tmp_path / "aus.csv"), "--backend", "native"]
        + ["--openface-bin", str(stand_in), "--quiet", "--scheduler", f"tcp://127.0.0.1:{port}"]
    )
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - started < 15
    assert err.startswith("error: ") and f"tcp://127.0.0.1:{port}" in err and says in err
    assert err.count("\n") == 1
    assert not (tmp_path / "aus.csv").exists()


def test_worker_that_cannot_see_the_run_folder_fails_the_batch_clearly(faces, tmp_path):
    images, _ = discover(faces)
    folders = RunFolders(tmp_path / "elsewhere.run")
    shutil.rmtree(folders.root)  # as on a worker without the shared file system
    result = image_task(
        NativeBackend(sys.executable),
        folders,
        folders.root / "staged",
        folders.root / "done",
        images[:2],
        "d0",
    )
    assert set(result["outcomes"]) == {i.key for i in images[:2]} and result["failed_calls"] == 1
    reason = next(iter(result["outcomes"].values()))
    assert "cannot see" in reason and "shared by the client and every worker" in reason
    assert not folders.root.exists()  # nothing created on the worker's own disk


def test_videos_on_dask_give_the_local_runners_table(cluster, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("FaceLandmarkImg", "FeatureExtraction", "FaceLandmarkVidMulti"):
        script = bin_dir / tool
        script.write_text(
            f'#!/bin/sh\nPYTHONPATH="{ROOT}" '
            f'exec "{sys.executable}" "{VIDEO / "replay_sequence.py"}" {tool} "$@"\n'
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(VIDEO / "default_30.avi", videos)
    shutil.copy(VIDEO / "no_face_10.avi", videos)
    shutil.copytree(VIDEO / "frames", videos / "session1" / "frames")
    backend = NativeBackend(bin_dir / "FaceLandmarkImg")
    local, dask = tmp_path / "local" / "t.csv", tmp_path / "dask" / "t.csv"
    run_sequences(videos, local, backend, workers=2, progress=False)
    summary = run_sequences(videos, dask, backend, progress=False, scheduler=cluster.scheduler.address)
    assert summary.frames > 0 and summary.calls == 3
    pd.testing.assert_frame_equal(pd.read_csv(dask), pd.read_csv(local))
    pd.testing.assert_frame_equal(pd.read_csv(failures_path(dask)), pd.read_csv(failures_path(local)))


@pytest.mark.openface
@pytest.mark.skipif(not BIN, reason=NO_OPENFACE)
def test_real_openface_video_on_dask_gives_the_local_runners_table(cluster, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(VIDEO / "default_30.avi", videos)
    backend = NativeBackend(BIN, ARGS)
    local, dask = tmp_path / "local" / "t.csv", tmp_path / "dask" / "t.csv"
    run_sequences(videos, local, backend, workers=1, progress=False)
    run_sequences(videos, dask, backend, progress=False, scheduler=cluster.scheduler.address)
    assert len(pd.read_csv(local)) > 0
    pd.testing.assert_frame_equal(pd.read_csv(dask), pd.read_csv(local))


def test_docker_backend_travels_to_workers_and_a_worker_without_engine_says_so(cluster, faces, tmp_path):
    """The Docker backend pickles (no client, locks or containers) and each worker checks its own engine."""
    backend = DockerBackend(timeout_s=60)
    copy = pickle.loads(pickle.dumps(backend))
    assert copy.image == backend.image and copy._client is None and not copy._containers
    out = tmp_path / "aus.csv"
    set_worker_env(cluster, "DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")  # no engine there
    try:
        summary = run_openface(
            faces, out, backend, batch_size=BATCH, progress=False, scheduler=cluster.scheduler.address
        )
    finally:
        set_worker_env(cluster, "DOCKER_HOST", None)
    assert summary.every_batch_failed and summary.rows == 0
    reasons = pd.read_csv(failures_path(out))["reason"]
    assert reasons.str.startswith("OpenFace cannot run on Dask worker dask-").all()


def test_benchmark_compares_dask_with_the_local_runner(faces, tmp_path, capsys):
    happy = faces / "happy"  # 5 images
    stand_in = write_openface(tmp_path / "FaceLandmarkImg", happy, "stand-in").binary
    command = ["benchmark", "--in", str(happy), "--backend", "native", "--openface-bin", stand_in]
    code = main([*command, "--quiet", "--batch-size", "8", "--scheduler", "local:1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "local runner, 1 workers: 5 images in" in out and "Dask, 1 workers: 5 images in" in out
    assert "outside OpenFace calls" in out and "Dask overhead against the local runner at 1 workers" in out


def test_worker_uses_its_own_openface_bin_when_the_clients_path_is_not_there(cluster, faces, tmp_path):
    stand_in = write_openface(tmp_path / "FaceLandmarkImg", faces, "stand-in")
    expected = reference(faces, stand_in, tmp_path)
    set_worker_env(cluster, "OPENFACE_BIN", stand_in.binary)  # OpenFace elsewhere on the workers
    try:
        out = tmp_path / "dask" / "aus.csv"
        elsewhere = NativeBackend(tmp_path / "client-only" / "FaceLandmarkImg")  # absent on the workers
        run_openface(
            faces, out, elsewhere, batch_size=BATCH, progress=False, scheduler=cluster.scheduler.address
        )
    finally:
        set_worker_env(cluster, "OPENFACE_BIN", None)
    assert_same(out, expected)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_local_cluster_workers_openface_get_their_own_cpus(faces, tmp_path):
    """On ``local:2`` each task's OpenFace runs on its worker's share of the CPUs, not on all."""
    record = tmp_path / "cpus.txt"
    before = f'grep Cpus_allowed_list /proc/$$/status | cut -f2 >> "{record}"'
    backend = write_openface(tmp_path / "FaceLandmarkImg", faces, "stand-in", before=before)
    expected = reference(faces, backend, tmp_path)
    record.unlink(missing_ok=True)  # the reference run's calls (local runner) are not this test's
    out = tmp_path / "dask" / "aus.csv"
    run_openface(faces, out, backend, batch_size=BATCH, progress=False, scheduler="local:2")
    assert_same(out, expected)
    calls = [_cpus(line) for line in record.read_text().split()]
    assert len(calls) == 4 and all(cpus in cpu_shares(2) for cpus in calls)  # 30 images in tasks of 8


def test_cpu_plan_only_for_local_clusters_of_this_process(cluster):
    shares = cpu_shares(2)
    assert cpu_plan("local:2") == (dict(enumerate(shares)) if shares else None)
    assert cpu_plan(cluster.scheduler.address) is None  # a scheduler this runner did not start
    with connect("local:2", progress=False) as client:  # the benchmark passes its address
        address = client.scheduler.address
        assert cpu_plan(address) == cpu_plan("local:2")
    assert cpu_plan(address) is None


def _cpus(listed: str) -> set[int]:
    """``0-2,5`` -> ``{0, 1, 2, 5}``."""
    cpus: set[int] = set()
    for part in listed.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus
