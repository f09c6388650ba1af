"""The AU table contract: reading real OpenFace tables and rejecting bad ones clearly."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.au_table import (
    AU_C_COLUMNS,
    AU_R_COLUMNS,
    BOX_COLUMNS,
    AUTableError,
    read_au_table,
    six_class_rows,
    write_au_table,
)
from tests.conftest import OPENFACE_SAMPLE


def test_seed_table_with_header_spaces_and_crlf(seed_csv):
    assert b"\r\n" in seed_csv.read_bytes()[:400] and seed_csv.read_text().startswith(" AU01_r")
    table = read_au_table(seed_csv, label_coding="seed")
    assert len(table) == 4473
    assert list(table.columns[:17]) == list(AU_R_COLUMNS)
    counts = table["label"].value_counts().to_dict()
    # data/seed_au/README.md: neutral's 700 include one mislabelled happy row
    assert counts == {
        "angry": 712,
        "disgust": 219,
        "happy": 764,
        "neutral": 700,
        "sad": 1038,
        "surprise": 1040,
    }
    assert table[list(AU_R_COLUMNS)].dtypes.eq(float).all()


def test_openface_table_with_presence_columns_and_fear():
    table = read_au_table(OPENFACE_SAMPLE)  # text labels: auto coding reads names
    assert set(AU_C_COLUMNS) <= set(table.columns)
    assert table.loc[0, "image"].startswith("PrivateTest_")
    assert (table["label"] == "fear").sum() == 10
    assert len(six_class_rows(table)) == len(table) - 10


def test_integer_labels_need_a_coding(seed_csv):
    with pytest.raises(AUTableError, match="integer codes.*seed.*fer2013"):
        read_au_table(seed_csv)


def test_fer2013_coding_maps_six_to_neutral(tmp_path, seed_csv):
    raw = pd.read_csv(seed_csv, skipinitialspace=True).head(20)
    raw["emotion"] = [6, 2] * 10
    path = tmp_path / "fer.csv"
    raw.to_csv(path, index=False)
    assert set(read_au_table(path, label_coding="fer2013")["label"]) == {"neutral", "fear"}


def test_write_round_trip_is_atomic(tmp_path):
    table = read_au_table(OPENFACE_SAMPLE)
    out = tmp_path / "sub" / "table.csv"
    write_au_table(table.drop(columns="image").assign(image=table["image"]), out)
    assert list(pd.read_csv(out, nrows=0).columns[:2]) == ["image", "label"]
    again = read_au_table(out)
    pd.testing.assert_frame_equal(again[list(AU_R_COLUMNS)], table[list(AU_R_COLUMNS)])
    assert [p.name for p in out.parent.iterdir()] == ["table.csv"]  # no temporary file left


def _broken(tmp_path, seed_csv, edit) -> str:
    """Write the real seed table with one defect; return the path."""
    raw = pd.read_csv(seed_csv, dtype=str, skipinitialspace=True).head(200)
    raw.columns = [c.strip() for c in raw.columns]
    raw = edit(raw)
    path = tmp_path / "broken.csv"
    raw.to_csv(path, index=False)
    return path


def _set(column, row, value):
    def edit(raw):
        raw.loc[row, column] = value
        return raw

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.drop(columns=["AU12_r", "AU45_r"]), r"missing AU column\(s\) AU12_r, AU45_r"),
        (_set("AU04_r", 6, "strong"), r"column AU04_r, data row 7 \(line 8\): 'strong' is not a number"),
        (_set("AU06_r", 9, ""), r"column AU06_r, data row 10 \(line 11\): empty cell"),
        (_set("AU06_r", 3, "NaN"), r"column AU06_r, data row 4 .*'NaN' is not a number"),
        (_set("AU12_r", 11, "5.5"), r"column AU12_r, data row 12 .*5.5 is outside 0-5"),
        (_set("AU01_r", 0, "-0.1"), r"column AU01_r, data row 1 .*-0.1 is outside 0-5"),
        (_set("emotion", 5, "9"), r"column emotion, data row 6 .*unknown label '9'"),
        (lambda r: r.assign(emotion="0"), r"fewer than two classes"),
        (lambda r: r.rename(columns={"emotion": "mood"}), r"no label column"),
    ],
)
def test_bad_input_names_file_column_and_row(tmp_path, seed_csv, edit, message):
    path = _broken(tmp_path, seed_csv, edit)
    with pytest.raises(AUTableError, match=message) as info:
        read_au_table(path, label_coding="seed")
    assert str(path) in str(info.value)


def _boxed(seed_csv) -> pd.DataFrame:
    """The real seed table (as text) with a face box in every row, the last row without one."""
    raw = pd.read_csv(seed_csv, dtype=str, skipinitialspace=True).iloc[::80].head(50).reset_index(drop=True)
    raw.columns = [c.strip() for c in raw.columns]
    boxes = {"face_x": "3.25", "face_y": "0", "face_w": "40.5", "face_h": "44"}
    raw = raw.assign(**boxes)
    raw.loc[49, list(BOX_COLUMNS)] = ""  # no box (a face without landmarks)
    return raw


def test_tables_without_face_boxes_still_read(seed_csv):
    table = read_au_table(seed_csv, label_coding="seed")  # the bundled data has no boxes
    assert not set(BOX_COLUMNS) & set(table.columns)
    assert not set(BOX_COLUMNS) & set(read_au_table(OPENFACE_SAMPLE).columns)


def test_face_boxes_are_read_and_written_after_the_meta_columns(tmp_path, seed_csv):
    path = tmp_path / "boxed.csv"
    _boxed(seed_csv).to_csv(path, index=False)
    table = read_au_table(path, label_coding="seed")
    assert table["face_w"].iloc[0] == 40.5 and table["face_x"].dtype == float
    assert table.loc[49, list(BOX_COLUMNS)].isna().all()  # empty cells: no box
    out = tmp_path / "out.csv"
    write_au_table(table, out)
    assert list(pd.read_csv(out, nrows=0).columns[:6]) == ["label", *BOX_COLUMNS, "AU01_r"]
    pd.testing.assert_frame_equal(read_au_table(out)[list(BOX_COLUMNS)], table[list(BOX_COLUMNS)])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("face_w", 3, "0"), r"column face_w, data row 4 .*0 is not > 0"),
        (_set("face_h", 7, "-2.5"), r"column face_h, data row 8 .*-2.5 is not > 0"),
        (_set("face_x", 2, "left"), r"column face_x, data row 3 .*'left' is not a number"),
        (_set("face_y", 5, "inf"), r"column face_y, data row 6 .*inf is not finite"),
        (_set("face_y", 5, ""), r"data row 6 .*face box without face_y; a row has all four"),
        (
            lambda r: r.drop(columns="face_h"),
            r"face box needs all of face_x, face_y, face_w, face_h; face_h missing",
        ),
    ],
)
def test_invalid_face_boxes_are_rejected(tmp_path, seed_csv, edit, message):
    path = tmp_path / "bad_box.csv"
    edit(_boxed(seed_csv)).to_csv(path, index=False)
    with pytest.raises(AUTableError, match=message) as info:
        read_au_table(path, label_coding="seed")
    assert str(path) in str(info.value)
    with pytest.raises(AUTableError, match="face_"):  # the writer refuses them too
        write_au_table(edit(_boxed(seed_csv)).apply(pd.to_numeric, errors="coerce"), tmp_path / "w.csv")


def test_presence_must_be_binary(tmp_path):
    raw = pd.read_csv(OPENFACE_SAMPLE, dtype=str)
    raw.loc[2, "AU12_c"] = "0.5"
    path = tmp_path / "c.csv"
    raw.to_csv(path, index=False)
    with pytest.raises(AUTableError, match=r"AU12_c, data row 3 .*not 0 or 1"):
        read_au_table(path)


def test_empty_and_header_only_and_missing_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(AUTableError, match="empty"):
        read_au_table(empty)
    header = tmp_path / "header.csv"
    header.write_text(",".join([*AU_R_COLUMNS, "label"]) + "\n")
    with pytest.raises(AUTableError, match="no data rows"):
        read_au_table(header)
    with pytest.raises(AUTableError, match="no such file"):
        read_au_table(tmp_path / "absent.csv")


def test_explicit_label_column_must_exist(seed_csv):
    with pytest.raises(AUTableError, match="label column 'target' not found"):
        read_au_table(seed_csv, label_column="target", label_coding="seed")


def test_duplicate_names_in_the_raw_header_are_rejected(tmp_path, seed_csv):
    """pandas renames a second ``AU04_r`` to ``AU04_r.1``: the raw header is checked instead."""
    lines = seed_csv.read_text().splitlines()
    header = lines[0].split(",")
    third = header[2]  # ' AU04_r', with OpenFace's leading space
    path = tmp_path / "dup.csv"
    path.write_text(
        "\n".join([f"{lines[0]},AU04_r"] + [f"{x},{x.split(',')[2]}" for x in lines[1:50]]) + "\n"
    )
    with pytest.raises(AUTableError) as info:
        read_au_table(path, label_coding="seed")
    assert str(info.value) == (
        f"{path}: columns 3 ({third!r}) and {len(header) + 1} ('AU04_r') are both named 'AU04_r'"
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) // 3], r"corrupt or truncated gzip file \(Compressed file ended"),
        (lambda b: b[:500] + bytes(100) + b[600:], r"corrupt or truncated gzip file \("),
        (lambda b: b"plain text, not gzip\n", r"corrupt or truncated gzip file \(Not a gzipped file"),
    ],
    ids=["truncated", "corrupt", "not-gzip"],
)
def test_corrupt_or_truncated_gz_is_one_line(tmp_path, seed_csv, damage, message):
    import gzip

    path = tmp_path / "seed.csv.gz"
    path.write_bytes(damage(gzip.compress(seed_csv.read_bytes(), mtime=0)))
    with pytest.raises(AUTableError, match=message) as info:
        read_au_table(path, label_coding="seed")
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_a_folder_is_not_a_table(tmp_path):
    with pytest.raises(AUTableError, match="is a folder, not an AU table file"):
        read_au_table(tmp_path)
