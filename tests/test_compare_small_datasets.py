"""``make compare IN=`` on small and odd labelled folders of real faces (issues 25 and 26).

Real faces: the 30 FER2013 PrivateTest images of ``tests/fixtures/openface/replay/input`` (5 per
emotion; OpenFace finds 4 of each) and the 5 webcam frames of one man in
``tests/fixtures/openface/video/frames``. A real OpenFace (``$OPENFACE_BIN``) runs once per module
on all 35; each case arranges some of them as a small labelled folder (pseudo-subjects in the file
names) with the matching rows of that AU table and runs compare on it (``AUS= IMAGES=``); the
6 x 5 case runs OpenFace itself (``IN=``), half its file names holding a backslash. Every case that
the comparison can run must write the page and the metrics and say on the page what could not be
computed and why; the unknown-class and one-class folders stay one-line errors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from markupsafe import escape  # what the pages' autoescape writes

from compare.cli import main
from tests.conftest import FIXTURES, fer2013_training_sample

REPLAY = FIXTURES / "openface" / "replay" / "input"
FRAMES = FIXTURES / "openface" / "video" / "frames"
OPENFACE_BIN = os.environ.get("OPENFACE_BIN", "")
OPENFACE_ARGS = "-mloc model/main_clnf_general.txt"  # the CLNF model every OpenFace test here uses
SUBJECT = r"^(S\d+)_"

pytestmark = [
    pytest.mark.openface,
    pytest.mark.skipif(not OPENFACE_BIN, reason="needs $OPENFACE_BIN (a real FaceLandmarkImg)"),
    pytest.mark.skipif(
        not __import__("importlib").util.find_spec("tensorflow"), reason="the CNN stage needs TensorFlow"
    ),
]


@dataclass
class Faces:
    """The module's faces: master path (``<emotion>/<file>`` below ``root``) -> OpenFace found one."""

    root: Path
    table: pd.DataFrame  # the master AU table, as strings
    found: dict[str, list[str]]  # emotion -> master paths of the replay faces OpenFace found
    missed: dict[str, list[str]]  # emotion -> master paths of those it missed
    frames: list[str]  # master paths of the webcam frames (one man)


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Faces:
    """Real OpenFace over the 35 faces, once."""
    root = tmp_path_factory.mktemp("master") / "faces"
    shutil.copytree(REPLAY, root)
    for frame in sorted(FRAMES.glob("*.jpg")):
        shutil.copy(frame, root / "surprise" / f"frame_{frame.name}")
    table = root.parent / "au_table.csv"
    command = [sys.executable, "-m", "openface_runner", "run", "--in", str(root), "--out", str(table),
               "--backend", "native", "--openface-bin", OPENFACE_BIN, "--mode", "auto",
               "--openface-args", OPENFACE_ARGS]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    rows = pd.read_csv(table, dtype=str, keep_default_na=False)
    seen = set(rows["image"])
    found, missed = {}, {}
    for folder in sorted(REPLAY.iterdir()):
        paths = [f"{folder.name}/{p.name}" for p in sorted(folder.iterdir())]
        found[folder.name] = [p for p in paths if p in seen]
        missed[folder.name] = [p for p in paths if p not in seen]
    frames = sorted(p for p in seen if "/frame_" in p)
    assert sum(map(len, found.values())) == 24 and len(frames) == 5  # what OpenFace 2.2.0 finds
    return Faces(root, rows, found, missed, frames)


@pytest.fixture(scope="module")
def train_table(tmp_path_factory) -> Path:
    """120 real FER2013 Training AU rows per emotion (what the models are fitted on here)."""
    return fer2013_training_sample(tmp_path_factory.mktemp("train"), 120)


def _replay(faces: Faces, subjects: int | None, per_emotion: dict[str, int] | None = None) -> dict[str, str]:
    """New path -> master path: the replay faces, subject ``S<k>`` by turn within each emotion."""
    out = {}
    for emotion in faces.found:
        paths = faces.found[emotion] + faces.missed[emotion]
        for i, path in enumerate(paths[: (per_emotion or {}).get(emotion, len(paths))]):
            prefix = f"S{i % subjects + 1}_" if subjects else ""
            out[f"{emotion}/{prefix}{Path(path).name}"] = path
    return out


def two_subjects(faces: Faces) -> dict[str, str]:
    return _replay(faces, 2)


def three_subjects(faces: Faces) -> dict[str, str]:
    return _replay(faces, 3)


def class_with_one_face(faces: Faces) -> dict[str, str]:
    # happy: one face (one OpenFace finds); the other emotions all five
    return _replay(faces, None, {"happy": 1})


def class_only_one_subject_shows(faces: Faces) -> dict[str, str]:
    # surprise: the five webcam frames of one man (S9), who shows no other emotion
    out = {k: v for k, v in _replay(faces, 3).items() if not k.startswith("surprise/")}
    out.update({f"surprise/S9_{Path(p).name}": p for p in faces.frames})
    return out


def extra_unknown_class(faces: Faces) -> dict[str, str]:
    out = _replay(faces, None)
    out["contempt/a.jpg"], out["contempt/b.jpg"] = faces.found["happy"][:2]
    out["fear/c.jpg"] = faces.found["sad"][0]
    return out


def one_paired_face(faces: Faces) -> dict[str, str]:
    # OpenFace finds one face of the three labelled images
    return {"happy/a.jpg": faces.found["happy"][0], "sad/b.jpg": faces.missed["sad"][0],
            "sad/c.jpg": faces.missed["angry"][0]}  # fmt: skip


def six_by_five_with_backslashes(faces: Faces) -> dict[str, str]:
    # 6 classes x 5 faces, 5 subjects; every second name holds a "\" (issue 26: it must keep its row)
    return {
        (k.replace("_Private", "_a\\b_Private") if i % 2 else k): v
        for i, (k, v) in enumerate(_replay(faces, 5).items())
    }


def copies_separated(faces: Faces) -> dict[str, str]:
    # every replay face six times, copy k as subject S<k>: 144 paired faces, enough rows for the
    # unpenalised logit's 90 parameters, whose identical copies separate the classes perfectly
    return {f"{k.split('/')[0]}/S{copy + 1}_{Path(v).name}": v
            for copy in range(6) for k, v in _replay(faces, None).items()}  # fmt: skip


def two_classes_no_neutral(faces: Faces) -> dict[str, str]:
    # two faces each of happy and sad, two subjects: no neutral face (the reference of every
    # coefficient), four emotions without an image, maybe no disagreement for the gallery
    return {
        f"{e}/S{i % 2 + 1}_{Path(p).name}": p
        for e in ("happy", "sad")
        for i, p in enumerate(faces.found[e][:2])
    }


def only_unknown_classes(faces: Faces) -> dict[str, str]:
    return {"contempt/a.jpg": faces.found["happy"][0], "other/b.jpg": faces.found["sad"][0]}


def one_class(faces: Faces) -> dict[str, str]:
    return {"happy/a.jpg": faces.found["happy"][0], "happy/b.jpg": faces.found["happy"][1],
            "contempt/c.jpg": faces.found["sad"][0]}  # fmt: skip


@dataclass
class Case:
    arrange: Callable[[Faces], dict[str, str]]
    subject: str | None = None
    run_openface: bool = False  # IN= (OpenFace runs on the folder) instead of AUS= IMAGES=
    shown: tuple[str, ...] = ()  # sentences (parts of them) the page must show
    metrics: dict = field(default_factory=dict)  # metrics.json values (dotted keys)
    error: str | None = None  # a one-line error (exit 2) instead of a page


CASES = {
    "two_subjects": Case(
        two_subjects,
        SUBJECT,
        shown=('id="interval-caution"', "only 2 subjects", "L2-penalised", "could not be fitted"),
        metrics={"transfer.model": "L2-penalised", "bootstrap.reliable": False, "dataset.n_subjects": 2},
    ),
    "three_subjects": Case(
        three_subjects,
        SUBJECT,
        shown=('id="interval-caution"', "only 3 subjects", "L2-penalised"),
        metrics={"transfer.model": "L2-penalised", "bootstrap.reliable": False},
    ),
    "class_with_one_face": Case(
        class_with_one_face,
        shown=("happy has 1 paired face", "L2-penalised"),
        metrics={"transfer.available": True, "n_end_to_end": 26},
    ),
    "class_only_one_subject_shows": Case(
        class_only_one_subject_shows,
        SUBJECT,
        shown=("surprise is shown by one subject only (S9)", 'id="interval-caution"'),
        metrics={"transfer.available": True, "dataset.n_subjects": 4},
    ),
    "extra_unknown_class": Case(
        extra_unknown_class,
        shown=("<code>contempt</code> (2)", "1 fear images", "L2-penalised"),
        metrics={"dataset.n_unknown": 2, "dataset.n_fear": 1, "n_end_to_end": 30},
    ),
    "one_paired_face": Case(  # OpenFace's faces are of one emotion: the AU models have nothing to compare
        one_paired_face, error="OpenFace found faces of one emotion only (happy"
    ),
    "six_by_five_with_backslashes": Case(
        six_by_five_with_backslashes,
        SUBJECT,
        run_openface=True,
        # subject S5 is every class's fifth face, the one OpenFace misses: the paired faces (and
        # their intervals) hold 4 subjects, the folder 5
        shown=("L2-penalised", "only 4 subjects"),
        metrics={
            "n_paired": 24,
            "n_end_to_end": 30,
            "transfer.available": True,
            "dataset.n_subjects": 5,
            "bootstrap.n_subjects": 4,
        },  # fmt: skip
    ),
    "copies_separated": Case(
        copies_separated,
        SUBJECT,
        shown=("L2-penalised", "could not be fitted", "separation", 'id="interval-caution"'),
        metrics={"n_paired": 144, "transfer.model": "L2-penalised", "transfer.n": 144},
    ),
    "two_classes_no_neutral": Case(
        two_classes_no_neutral,
        SUBJECT,
        shown=(
            'id="not-computed"',
            "no paired face is neutral",
            "F1 of angry, disgust, neutral, surprise",
            "L2-penalised",
            "only 2 subjects",
        ),  # fmt: skip
        metrics={"n_paired": 4, "transfer.model": "L2-penalised", "classes.neutral.n_labelled": 0},
    ),
    "only_unknown_classes": Case(
        only_unknown_classes, error="no image in a folder named after one of the six emotions"
    ),
    "one_class": Case(one_class, error="only one emotion (happy)"),
}


def _arrange(faces: Faces, files: dict[str, str], folder: Path) -> Path:
    """Copy the faces to ``folder`` under their new names; write their rows of the master AU table
    (renamed) beside it and return that table (a face copied under two names gets two rows)."""
    by_image = faces.table.set_index("image", drop=False)
    rows = []
    for new, master in files.items():
        (folder / new).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(faces.root / master, folder / new)
        if master in by_image.index:
            rows.append({**by_image.loc[master].to_dict(), "image": new})
    table = folder.parent / f"{folder.name}_aus.csv"
    pd.DataFrame(rows, columns=faces.table.columns).to_csv(table, index=False)
    return table


def _value(metrics: dict, dotted: str):
    for key in dotted.split("."):
        metrics = metrics[key]
    return metrics


@pytest.mark.parametrize("name", list(CASES))
def test_small_labelled_folders(name, faces, train_table, tmp_path, capfd):
    case = CASES[name]
    folder = tmp_path / name
    table = _arrange(faces, case.arrange(faces), folder)
    out = tmp_path / "reports"
    args = ["run", "--out", str(out), "--au-table", str(train_table), "--resamples", "50", "--no-fer-package"]
    if case.run_openface:
        args += ["--in", str(folder), "--backend", "native", "--openface-bin", OPENFACE_BIN,
                 "--openface-args", OPENFACE_ARGS, "--cache", str(tmp_path / "cache")]  # fmt: skip
    else:
        args += ["--aus", str(table), "--images", str(folder), "--name", name]
    if case.subject:
        args += ["--subject", case.subject]
    code = main(args)
    err = capfd.readouterr().err
    assert "Traceback" not in err
    if case.error:
        assert code == 2
        last = err.strip().splitlines()[-1]
        assert case.error in last and last.startswith("error: ")
        assert not (out / f"compare-{name}.html").exists()
        return
    assert code == 0
    page = (out / f"compare-{name}.html").read_text()
    metrics = json.loads((out / f"compare-{name}" / "metrics.json").read_text())
    assert (out / f"compare-{name}" / "predictions.csv").is_file()
    for sentence in case.shown:
        assert sentence in page, sentence
    for key, value in case.metrics.items():
        assert _value(metrics, key) == value, key
    for gap in metrics["not_computed"]:  # each part that could not be computed is named, with its reason
        assert str(escape(gap["part"])) in page and str(escape(gap["reason"])) in page, gap
    cards = pd.read_csv(out / f"compare-{name}" / "gallery.csv")
    assert cards.empty == any(g["part"] == "gallery of disagreements" for g in metrics["not_computed"])
    transfer = metrics["transfer"]
    assert transfer["available"] or transfer["reason"]
    if transfer["available"]:
        assert 0 <= transfer["accuracy"] <= 1
    # the AU estimator on the dataset's crops: its rows, and its AUs against OpenFace's (bias included)
    assert {"logit_au_est", "glassbox_au_est", "glassbox_au_est_concepts"} <= set(metrics["models"])
    quality = pd.read_csv(out / f"compare-{name}" / "au_estimator_quality.csv")
    assert "bias" in quality and len(quality) == 17 + 6 and 'id="au-quality"' in page


def test_interval_caution_threshold():
    """Below ``MIN_SUBJECTS`` subjects the cluster bootstrap's intervals are called unreliable."""
    from compare.statistics import MIN_SUBJECTS, subject_interval_caution

    assert MIN_SUBJECTS == 10
    assert subject_interval_caution(None) is None and subject_interval_caution(MIN_SUBJECTS) is None
    caution = subject_interval_caution(2)
    assert "only 2 subjects" in caution and "3 different resamples" in caution
    assert "unreliable" in subject_interval_caution(MIN_SUBJECTS - 1)


def test_one_face_scores_without_intervals():
    """One face: point scores, no bootstrap interval (scipy needs two), and a reason."""
    import numpy as np

    from compare.statistics import scores_with_ci

    one = scores_with_ci(np.array(["happy"]), np.array(["happy"]), 50, 0)
    assert one["accuracy"] == 1.0 and np.isnan(one["accuracy_ci"]).all()
    assert "a bootstrap needs at least two" in one["ci_reason"]
