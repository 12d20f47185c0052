from __future__ import annotations

import re
from pathlib import Path

import pytest

from gristmill.stages.ingest import reasons
from gristmill.stages.ingest.base import InputFileError, Limits
from gristmill.stages.ingest.text import TextReader

from .conftest import documents, read_rows, reasons_of

STDLIB = Path(__file__).parents[2] / "data" / "python-stdlib"


def _tree(tmp_path: Path) -> list[Path]:
    """The copied stdlib modules plus a binary file, an empty file and a README in one tree."""
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    for src in sorted(STDLIB.glob("*.py")):
        (root / "pkg" / src.name).write_bytes(src.read_bytes())
    (root / "pkg" / "compiled.py").write_bytes(b"\x00\x01\x02 not text")
    (root / "pkg" / "empty.py").write_bytes(b"  \n")
    (root / "README.md").write_text("A small repository.\n", encoding="utf-8")
    return sorted(root.rglob("*"))


def test_files_are_grouped_into_units(tmp_path):
    files = [str(p) for p in _tree(tmp_path) if p.is_file()]
    reader = TextReader(TextReader.Params(files_per_unit=4), Limits())
    units = reader.units(files, first_index=7)
    assert [u.index for u in units] == [7, 8, 9, 10]  # 13 files in units of 4
    assert [p for u in units for p in u.paths] == files


def test_each_file_is_one_document_and_binary_files_are_rejected(tmp_path):
    files = [p for p in _tree(tmp_path) if p.is_file()]
    rows = read_rows(TextReader, files, files_per_unit=5, relative_to=str(tmp_path / "repo"))
    assert len(rows) == len(files)
    by_origin = {r["origin"]: r for r in rows}
    assert by_origin["pkg/compiled.py"]["reject_reason"] == reasons.BINARY_FILE
    assert by_origin["pkg/empty.py"]["reject_reason"] == reasons.EMPTY_TEXT
    assert by_origin["pkg/textwrap.py"]["text"] == (STDLIB / "textwrap.py").read_text(encoding="utf-8")
    assert all(r["url"] is None for r in rows)
    assert len(documents(rows)) == 11


def test_extension_filter(tmp_path):
    files = [str(p) for p in _tree(tmp_path) if p.is_file()]
    reader = TextReader(TextReader.Params(extensions=[".md"]), Limits())
    (unit,) = reader.units(files, 0)
    assert [Path(p).name for p in unit.paths] == ["README.md"]


def test_undecodable_bytes_are_replaced_and_large_files_rejected(tmp_path):
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("café au lait\n".encode("latin-1"))
    big = tmp_path / "big.txt"
    big.write_bytes(b"word " * 1000)
    rows = read_rows(TextReader, [latin, big], Limits(max_record_bytes=1000))
    assert rows[0]["text"] == "caf\ufffd au lait\n"
    assert reasons_of(rows) == [None, reasons.RECORD_TOO_LARGE]
    assert rows[0]["origin"] == str(latin)  # no relative_to: the path as given


def test_a_vanished_file_is_an_error_naming_it_or_a_read_error_when_skipped(tmp_path):
    gone = tmp_path / "gone.txt"
    with pytest.raises(InputFileError, match=re.escape(str(gone))):
        read_rows(TextReader, [gone])
    (row,) = read_rows(TextReader, [gone], on_error="skip")
    assert row["reject_reason"] == f"{reasons.READ_ERROR}: No such file or directory"
    assert row["origin"] == str(gone)


def test_invalid_utf8_in_a_file_is_replaced_and_counted(tmp_path):
    src = sorted(STDLIB.glob("*.py"))[0]
    path = tmp_path / "latin1_comment.py"
    path.write_bytes(src.read_bytes() + "# caf\u00e9 in Latin-1\n".encode("latin-1"))
    (row,) = read_rows(TextReader, [path])
    assert row["reject_reason"] is None
    assert row["notes"] == [reasons.INVALID_BYTES_REPLACED]
    assert row["text"].endswith("# caf\ufffd in Latin-1\n")
