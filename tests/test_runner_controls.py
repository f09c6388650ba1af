"""The runner's controls: OpenFace failures recorded, ranges checked, resume by content, signals,
argument checks, exit codes, and the Docker container's confinement (as built, and on a real
engine where one is reachable)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from analysis.au_table import read_au_table
from openface_runner import cli
from openface_runner.backends import BackendError, DockerBackend, NativeBackend, RunFolders, exit_reason
from openface_runner.docker_backend import LABEL_OWNER, LABEL_RUN, image_reference, is_stale
from openface_runner.errors import InvariantError, OutputError
from openface_runner.inputs import InputImage, discover
from openface_runner.parse import parse_face_csv
from openface_runner.runner import NO_FACE, cpu_shares, failures_path, run_openface
from tests.test_runner_bad_inputs import REPLAY, ROOT, write_stand_in

SAMPLE = REPLAY / "output" / "happy" / "PrivateTest_29833448.csv"


@pytest.fixture
def faces(tmp_path) -> Path:
    root = tmp_path / "faces"
    shutil.copytree(REPLAY / "input", root)
    return root


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "openface_runner", "run", *args, "--quiet"]


def _run_cli(args: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(_cli(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _dead(pid: int) -> bool:
    """No such process, or a zombie nobody has reaped yet."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


# --- OpenFace's exit code -------------------------------------------------------------------------


def test_failing_openface_is_each_images_failure_and_exit_1(faces, tmp_path):
    broken = tmp_path / "bin" / "FaceLandmarkImg"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\necho 'could not load model' >&2\nexit 3\n")
    broken.chmod(0o755)
    out = tmp_path / "aus.csv"
    done = _run_cli(
        ["--in", str(faces), "--out", str(out), "--backend", "native", "--openface-bin", str(broken)]
    )
    assert done.returncode == 1 and "every OpenFace call failed" in done.stderr
    reasons = pd.read_csv(failures_path(out))["reason"]
    assert len(reasons) == 30 and NO_FACE not in set(reasons)
    log = out.with_name("aus.csv.run") / "logs"
    assert set(reasons).issubset(
        {f"OpenFace exited with code 3; see {log}/worker-{w}.log" for w in range(30)}
    )
    assert "could not load model" in (log / "worker-0.log").read_text()


def test_one_failing_batch_loses_only_its_images_and_is_retried(faces, tmp_path):
    scripts = tmp_path / "bin"
    scripts.mkdir()
    flaky = write_stand_in(scripts, faces, before='case "$*" in *w0-b1*) exit 1;; esac')
    out = tmp_path / "aus.csv"
    first = run_openface(faces, out, NativeBackend(flaky), workers=1, batch_size=10, progress=False)
    assert (first.batches, first.failed_batches, first.rows + first.failures) == (3, 1, 30)
    assert first.reasons[f"OpenFace exited with code 1; see {first.run_dir}/logs/worker-0.log"] == 10
    assert not first.every_batch_failed

    fixed = write_stand_in(tmp_path, faces)
    again = run_openface(faces, out, NativeBackend(fixed), workers=1, batch_size=10, progress=False)
    assert again.processed_now == 10 and (again.rows, again.reasons) == (24, {NO_FACE: 6})


def test_an_image_that_crashes_openface_costs_only_itself(faces, tmp_path):
    # Real OpenFace 2.2.0 aborts (std::length_error) on a 1x10000 px image and took its whole
    # batch with it; the stand-in aborts the same way whenever that image is in its batch.
    shutil.copy(faces / "happy" / "PrivateTest_29833448.jpg", faces / "happy" / "crasher.jpg")
    key = next(i.key for i in discover(faces)[0] if i.relative == "happy/crasher.jpg")
    find_dir = 'd=$(echo "$@" | sed "s/.*-fdir \\([^ ]*\\).*/\\1/")'
    stand_in = write_stand_in(tmp_path, faces, before=f'{find_dir}; [ -e "$d/{key}.png" ] && kill -ABRT $$')
    summary = run_openface(faces, tmp_path / "aus.csv", NativeBackend(stand_in), workers=1, progress=False)
    log = summary.run_dir / "logs" / "worker-0.log"
    assert (summary.rows, summary.batches, summary.failed_batches) == (24, 1, 0)
    crashed = pd.read_csv(failures_path(tmp_path / "aus.csv")).set_index("image")["reason"][
        "happy/crasher.jpg"
    ]
    assert crashed == f"OpenFace was killed by signal 6 (SIGABRT); see {log}"


def test_time_limit_stops_openface(faces, tmp_path):
    slow = write_stand_in(tmp_path, faces, before=f'echo $$ >> "{tmp_path}/pids"', delay=5)
    out = tmp_path / "aus.csv"
    started = time.monotonic()
    done = _run_cli(
        ["--in", str(faces), "--out", str(out), "--backend", "native", "--openface-bin", str(slow)]
        + ["--workers", "1", "--batch-size", "30", "--batch-timeout", "1"]
    )
    assert done.returncode == 1 and time.monotonic() - started < 60
    reasons = set(pd.read_csv(failures_path(out))["reason"])
    assert reasons == {f"OpenFace timed out after 1 s; see {out.with_name('aus.csv.run')}/logs/worker-0.log"}
    assert all(_dead(int(pid)) for pid in (tmp_path / "pids").read_text().split())


def test_exit_reasons():
    log = Path("run/logs/worker-2.log")
    assert exit_reason(1, 60, log) == "OpenFace exited with code 1; see run/logs/worker-2.log"
    assert exit_reason(124, 60, log).startswith("OpenFace timed out after 60 s")
    assert exit_reason(-9, 60, log).startswith("OpenFace was killed by signal 9 (SIGKILL)")
    assert exit_reason(139, 60, log).startswith("OpenFace was killed by signal 11 (SIGSEGV)")  # docker exec


# --- OpenFace rows checked against the AU table's ranges ------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("AU07_r", "7", "AU07_r = 7 in face row 1, outside 0-5"),
        ("AU01_r", "-0.2", "AU01_r = -0.2 in face row 1, outside 0-5"),
        ("confidence", "1.7", "confidence = 1.7 in face row 1, outside 0-1"),
        ("AU12_c", "0.5", "AU12_c = 0.5 in face row 1, not 0 or 1"),
        ("face", "x", "face = 'x' in face row 1, not an integer"),
    ],
)
def test_out_of_range_rows_are_refused(tmp_path, column, value, message):
    frame = pd.read_csv(SAMPLE, dtype=str)
    frame[column] = value
    path = tmp_path / "face.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(OutputError) as error:
        parse_face_csv(path)
    assert error.value.problem == message


def test_out_of_range_output_is_a_recorded_failure(faces, tmp_path):
    # OpenFace (replayed) writes confidence 1.7 for every face: each becomes a failure, not a row.
    scripts = tmp_path / "bin"
    scripts.mkdir()
    replay = write_stand_in(scripts, faces)
    spoil = tmp_path / "FaceLandmarkImg"
    spoil.write_text(
        f'#!/bin/sh\n"{replay}" "$@" || exit $?\n'
        'while [ "$1" != "-out_dir" ]; do shift; done\n'
        'for f in "$2"/*.csv; do\n'
        '  [ -e "$f" ] && sed -i \'2s/^\\([^,]*\\),[^,]*/\\1,1.7/\' "$f"\n'
        "done\nexit 0\n"
    )
    spoil.chmod(0o755)
    summary = run_openface(faces, tmp_path / "aus.csv", NativeBackend(spoil), workers=1, progress=False)
    bad = "unusable OpenFace output: confidence = 1.7 in face row 1, outside 0-1"
    assert (summary.rows, summary.reasons) == (0, {bad: 24, NO_FACE: 6})


# --- resume --------------------------------------------------------------------------------------


def test_replaced_image_is_processed_again(faces, tmp_path):
    stand_in = write_stand_in(tmp_path, faces)
    run_openface(faces, tmp_path / "aus.csv", NativeBackend(stand_in), workers=1, progress=False)
    same = run_openface(faces, tmp_path / "aus.csv", NativeBackend(stand_in), workers=1, progress=False)
    assert same.processed_now == 0
    shutil.copy(faces / "angry" / "PrivateTest_61911448.jpg", faces / "happy" / "PrivateTest_29833448.jpg")
    again = run_openface(faces, tmp_path / "aus.csv", NativeBackend(stand_in), workers=1, progress=False)
    assert again.processed_now == 1 and again.inputs == 30


def test_out_inside_in_is_not_ingested(faces, tmp_path):
    stand_in = write_stand_in(tmp_path, faces)
    for _ in range(3):
        summary = run_openface(faces, faces / "aus.csv", NativeBackend(stand_in), workers=1, progress=False)
        assert (summary.inputs, summary.rows, summary.failures) == (30, 24, 6)
    assert len(read_au_table(faces / "aus.csv")) == 24
    assert any("inside the input folder" in note for note in summary.notes)


def test_another_runs_folder_inside_in_is_not_ingested(faces, tmp_path):
    stand_in = write_stand_in(tmp_path, faces)
    run_openface(faces, faces / "first.csv", NativeBackend(stand_in), workers=1, progress=False)
    second = run_openface(faces, tmp_path / "second.csv", NativeBackend(stand_in), workers=1, progress=False)
    # first.csv and first.failures.csv are files in IN (recorded); first.csv.run/ is skipped.
    assert second.inputs == 32 and second.reasons["not an image file (.csv)"] == 2


def test_a_run_folder_is_used_by_one_run_at_a_time(faces, tmp_path):
    stand_in = write_stand_in(tmp_path, faces)
    folders = RunFolders(tmp_path / "aus.csv.run")
    with folders.lock(), pytest.raises(cli.RunnerError, match="in use by another run"):
        run_openface(faces, tmp_path / "aus.csv", NativeBackend(stand_in), progress=False)


# --- signals and the binary's path -----------------------------------------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_openface_and_leaves_no_process(faces, tmp_path, sig, code):
    slow = write_stand_in(tmp_path, faces, before=f'echo $$ >> "{tmp_path}/pids"', delay=2)
    out = tmp_path / "aus.csv"
    args = ["--in", str(faces), "--out", str(out), "--backend", "native", "--openface-bin", str(slow)]
    args += ["--workers", "2", "--batch-size", "15"]
    child = subprocess.Popen(_cli(*args), cwd=ROOT, stderr=subprocess.PIPE, text=True)
    pids = tmp_path / "pids"
    deadline = time.monotonic() + 60
    while (not pids.exists() or len(pids.read_text().split()) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    openface = [int(pid) for pid in pids.read_text().split()]
    child.send_signal(sig)  # to the runner alone, not its process group
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == code and f"stopped by {sig.name}" in stderr
    deadline = time.monotonic() + 10
    while not all(_dead(pid) for pid in openface) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_dead(pid) for pid in openface)
    assert not out.exists()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_killing_the_runners_process_group_leaves_no_openface(faces, tmp_path, sig):
    # As a shell or a batch scheduler kills a job: the signal goes to the runner's process group,
    # which OpenFace's calls are not in (each runs in its own session); SIGKILL and SIGHUP leave
    # the runner no chance to stop them itself.
    slow = write_stand_in(tmp_path, faces, before=f'echo $$ >> "{tmp_path}/pids"', delay=30)
    args = ["--in", str(faces), "--out", str(tmp_path / "aus.csv"), "--backend", "native"]
    args += ["--openface-bin", str(slow), "--workers", "2", "--batch-size", "15"]
    # the default action of each signal, as a login shell's job has it: a suite started under
    # `nohup` would otherwise pass SIGHUP's "ignore" on to the runner
    child = subprocess.Popen(_cli(*args), cwd=ROOT, stderr=subprocess.DEVNULL, start_new_session=True,
                             preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))  # fmt: skip
    pids = tmp_path / "pids"
    deadline = time.monotonic() + 60
    while (not pids.exists() or len(pids.read_text().split()) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    openface = [int(pid) for pid in pids.read_text().split()]
    os.killpg(child.pid, sig)
    child.wait(timeout=30)
    deadline = time.monotonic() + 10
    while not all(_dead(pid) for pid in openface) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [pid for pid in openface if not _dead(pid)]
    for pid in alive:  # do not leave them running if the test fails
        os.kill(pid, signal.SIGKILL)
    assert not alive


def test_relative_openface_bin_and_out(faces, tmp_path):
    (tmp_path / "bin").mkdir()
    write_stand_in(tmp_path / "bin", faces)
    done = _run_cli(
        [
            "--in",
            "faces",
            "--out",
            "out/aus.csv",
            "--backend",
            "native",
            "--openface-bin",
            "bin/FaceLandmarkImg",
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert len(read_au_table(tmp_path / "out" / "aus.csv")) == 24


# --- arguments and errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--batch-size", "0"),
        ("--batch-size", "-1"),
        ("--upscale", "nan"),
        ("--upscale", "inf"),
        ("--upscale", "0"),
        ("--upscale", "-1"),
        ("--border", "-5"),
        ("--workers", "0"),
        ("--batch-timeout", "0"),
    ],
)
def test_bad_arguments_fail_before_any_work(faces, tmp_path, capsys, option, value):
    out = tmp_path / "aus.csv"
    argv = [
        "run",
        "--in",
        str(faces),
        "--out",
        str(out),
        "--backend",
        "native",
        "--openface-bin",
        "/bin/true",
    ]
    with pytest.raises(SystemExit) as exit_:
        cli.main([*argv, f"{option}={value}"])
    stderr = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and stderr[-1].startswith(
        f"python -m openface_runner run: error: argument {option}"
    )
    assert "Traceback" not in "\n".join(stderr) and not out.with_name("aus.csv.run").exists()


@pytest.mark.parametrize(
    ("make_out", "message"),
    [
        (lambda tmp: tmp / "folder", "is a folder"),
        (lambda tmp: tmp / "file.txt" / "aus.csv", "cannot write in"),
    ],
)
def test_unusable_output_location_fails_before_the_work(faces, tmp_path, capsys, make_out, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("in the way")
    stand_in = write_stand_in(tmp_path, faces)
    out = make_out(tmp_path)
    code = cli.main(
        ["run", "--in", str(faces), "--out", str(out), "--backend", "native"]
        + ["--openface-bin", str(stand_in), "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err
    assert not list(tmp_path.glob("**/*.run"))


def test_a_bug_shows_its_traceback(faces, tmp_path, monkeypatch):
    def buggy(*args, **kwargs):
        raise ValueError("a bug, not a user error")

    monkeypatch.setattr("openface_runner.runner.run_openface", buggy)
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["run", "--in", str(faces), "--out", str(tmp_path / "t.csv"), "--backend", "native"])


def test_broken_invariant_is_an_error_not_an_assert(faces, tmp_path, monkeypatch):
    # Two inputs under one name (a bug in discovery): one fails staging, the other is lost.
    good = faces / "happy" / "PrivateTest_29833448.jpg"
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not an image")
    twins = [InputImage(corrupt, "x.jpg", "", "img_a"), InputImage(good, "x.jpg", "", "img_b")]
    monkeypatch.setattr("openface_runner.runner.discover", lambda *a, **k: (twins, []))
    stand_in = write_stand_in(tmp_path, faces)
    with pytest.raises(InvariantError, match="2 inputs but 0 rows \\+ 1 failures"):
        run_openface(faces, tmp_path / "aus.csv", NativeBackend(stand_in), workers=1, progress=False)
    assert not failures_path(tmp_path / "aus.csv").exists()  # nothing written from a broken count


# --- one CPU per worker ----------------------------------------------------------------------------


def test_cpu_shares_are_disjoint_and_none_beyond_the_cpus(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 5})
    assert cpu_shares(2) == [{0, 1}, {2, 3}]  # k = 5 // 2: the fifth CPU is left to the client
    assert cpu_shares(5) == [{0}, {1}, {2}, {3}, {5}]
    assert cpu_shares(1) == [{0, 1, 2, 3, 5}]
    assert cpu_shares(6) is None  # more workers than CPUs: nothing confined


def write_cpu_recorder(folder: Path, faces: Path, record: Path) -> Path:
    """The replay stand-in that first appends the CPUs it may use (``Cpus_allowed_list``) to ``record``."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_stand_in(folder, faces, before=f'grep Cpus_allowed_list /proc/$$/status >> "{record}"')


def allowed(line: str) -> set[int]:
    """``Cpus_allowed_list:\t0-2,5`` -> ``{0, 1, 2, 5}``."""
    cpus: set[int] = set()
    for part in line.split(":", 1)[1].strip().split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_each_workers_openface_gets_its_own_cpus(faces, tmp_path):
    record = tmp_path / "cpus.txt"
    stand_in = write_cpu_recorder(tmp_path / "bin", faces, record)
    run_openface(
        faces, tmp_path / "aus.csv", NativeBackend(stand_in), workers=2, batch_size=5, progress=False
    )
    calls = [allowed(line) for line in record.read_text().splitlines()]
    shares = cpu_shares(2)
    assert len(calls) == 6 and all(cpus in shares for cpus in calls)  # each call one worker's share
    assert set(map(frozenset, calls)) == set(shares)  # both workers' shares used, disjoint
    assert all(len(cpus) == len(os.sched_getaffinity(0)) // 2 for cpus in calls)


# --- Docker: the container as built, image references, stale containers -------------------------------


def test_container_is_confined_and_labelled(tmp_path):
    from docker.models.containers import _create_container_args

    folders = RunFolders(tmp_path / "run")
    backend = DockerBackend(timeout_s=90, mem_limit="2g", pids_limit=128)
    options = backend.container_options(folders, worker=3)
    # What the SDK sends to the engine (no engine needed to build it).
    create = _create_container_args({**options, "version": "1.44"})
    host = create["host_config"]
    assert create["network_disabled"] is True
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Memory"] == host["MemorySwap"] == 2 * 1024**3 and host["PidsLimit"] == 128
    assert host["Binds"] == [f"{folders.batches}:/workbench/in:ro", f"{folders.outputs}:/workbench/out:rw"]
    assert create["labels"][LABEL_RUN] == str(folders.root) and create["labels"][LABEL_OWNER].endswith(
        f":{os.getpid()}"
    )
    assert backend.exec_command("w3-b0")[:4] == ["timeout", "--kill-after=10", "90", "./FaceLandmarkImg"]
    assert "CpusetCpus" not in host  # not confined to CPUs unless given some
    pinned = _create_container_args({**backend.container_options(folders, 1, {3, 2}), "version": "1.44"})
    assert pinned["host_config"]["CpusetCpus"] == "2,3"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("algebr/openface", ("algebr/openface", "latest")),
        ("algebr/openface:2.2", ("algebr/openface", "2.2")),
        ("localhost:5000/openface", ("localhost:5000/openface", "latest")),
        ("localhost:5000/openface:2.2", ("localhost:5000/openface", "2.2")),
        ("algebr/openface@sha256:" + "ab" * 32, ("algebr/openface", "sha256:" + "ab" * 32)),
    ],
)
def test_image_references(reference, expected):
    assert image_reference(reference) == expected


def test_empty_image_reference_is_refused_before_the_engine():
    with pytest.raises(BackendError, match="not a Docker image reference"):
        DockerBackend(image="algebr/openface:").check()


def test_stale_containers_are_those_of_dead_runs():
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead, here = finished.pid, "host-a"

    def alive(pid: int) -> bool:
        return pid != dead

    mine = {LABEL_RUN: "/runs/a.run", LABEL_OWNER: f"{here}:{dead}"}
    assert is_stale(mine, "/runs/a.run", here, alive)  # this run folder: locked, so nobody else's
    assert is_stale({**mine, LABEL_RUN: "/runs/b.run"}, "/runs/a.run", here, alive)  # owner gone
    assert not is_stale(
        {**mine, LABEL_RUN: "/runs/b.run", LABEL_OWNER: f"{here}:1"}, "/runs/a.run", here, alive
    )
    assert not is_stale(
        {**mine, LABEL_RUN: "/runs/b.run", LABEL_OWNER: f"host-b:{dead}"}, "/runs/a.run", here, alive
    )
    assert not is_stale({"other": "label"}, "/runs/a.run", here, alive)


# --- Docker on a real engine, where one is reachable ----------------------------------------------------


def _engine():
    try:
        import docker

        client = docker.from_env()
        client.ping()
        client.images.get("algebr/openface:latest")
        return client
    except Exception:
        return None


needs_engine = pytest.mark.skipif(
    _engine() is None, reason="needs a Docker engine with algebr/openface:latest"
)
CLNF = ["--openface-args", "-mloc model/main_clnf_general.txt"]


def _labelled(client, run_dir: Path) -> list:
    return client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_dir}"})


def _many_faces(tmp_path: Path, copies: int) -> Path:
    root = tmp_path / "many"
    for n in range(copies):
        shutil.copytree(REPLAY / "input", root / f"copy{n}")
    return root


@pytest.mark.docker
@needs_engine
def test_docker_sigterm_removes_the_confined_containers(tmp_path):
    client = _engine()
    out = tmp_path / "aus.csv"
    run_dir = out.with_name("aus.csv.run")
    args = ["--in", str(_many_faces(tmp_path, 10)), "--out", str(out), "--workers", "2", "--batch-size", "20"]
    child = subprocess.Popen(_cli(*args, *CLNF), cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(_labelled(client, run_dir)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    container = _labelled(client, run_dir)[0]
    config, host = container.attrs["Config"], container.attrs["HostConfig"]
    assert config["NetworkDisabled"] is True and host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"] and host["PidsLimit"] == 256
    assert host["Memory"] == 4 * 1024**3 and config["User"] == f"{os.getuid()}:{os.getgid()}"
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 143, stderr
    assert _labelled(client, run_dir) == []


@pytest.mark.docker
@needs_engine
def test_docker_containers_of_a_killed_run_are_removed_by_the_next(tmp_path):
    client = _engine()
    faces = _many_faces(tmp_path, 3)
    out = tmp_path / "aus.csv"
    run_dir = out.with_name("aus.csv.run")
    args = ["--in", str(faces), "--out", str(out), "--workers", "1", "--batch-size", "10", *CLNF]
    child = subprocess.Popen(_cli(*args), cwd=ROOT, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not _labelled(client, run_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    child.kill()  # SIGKILL: no cleanup can run
    child.wait()
    assert len(_labelled(client, run_dir)) == 1  # left behind, running `sleep infinity`
    again = _run_cli(args)
    assert again.returncode == 0, again.stderr
    assert _labelled(client, run_dir) == [] and len(pd.read_csv(out)) >= 60


@pytest.mark.docker
@needs_engine
def test_docker_time_limit_applies_inside_the_container(tmp_path):
    out = tmp_path / "aus.csv"
    done = _run_cli(["--in", str(REPLAY / "input"), "--out", str(out), "--batch-timeout", "0.01", *CLNF])
    assert done.returncode == 1
    reasons = set(pd.read_csv(failures_path(out))["reason"])
    assert {r.split(";")[0] for r in reasons} == {"OpenFace timed out after 0.01 s"}
