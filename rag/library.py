"""The documents behind an index: listing them, adding people's own files (kept in the uploads
folder, never in the sources or the code), removing one, and the background job that embeds
what a lexical index still lacks.

The Pipeline's `documents`, `add_documents`, `remove_document` and `embed_in_background` use
these; the chat and the API go through the Pipeline.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import threading
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from .config import Settings
from .chunking import chunk_source
from .documents import OPTIONAL_SUFFIXES, TEXT_SUFFIXES, find_files, load_file
from .index import BuildReport, Index, current_version, embed_pending, index_lexical, load_index
from .models import GovragError

UPLOAD_SUFFIXES = tuple(sorted(TEXT_SUFFIXES | set(OPTIONAL_SUFFIXES)))
MAX_NAME_CHARS = 120
_UNSAFE = re.compile(r'[<>:"/\\|?*\s]+')


@dataclass
class DocumentInfo:
    """One indexed document as the documents tab lists it."""

    name: str  # file name (the `doc` of its chunks)
    title: str
    district: str
    year: int | None
    kind: str  # progress_table | task_list | work_report | news ...
    chunks: int
    added: str  # ISO time it entered the index
    uploaded: bool  # True when it lives in the uploads folder


@dataclass
class AddReport:
    """What `add_documents` did; `skipped` holds one clear message per refused file."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        parts = []
        if self.added:
            parts.append(f"added {', '.join(self.added)}")
        if self.replaced:
            parts.append(f"replaced {', '.join(self.replaced)}")
        parts += [f"skipped {msg}" for msg in self.skipped]
        return "; ".join(parts) or "nothing to add"


def list_documents(index: Index, uploads_dir: str | Path) -> list[DocumentInfo]:
    """Every document of an index with its metadata and chunk count, in index order."""
    counts: Counter = Counter(c.doc for c in index.chunks)
    first = {}
    for c in index.chunks:
        first.setdefault(c.doc, c)
    added = index.manifest.get("added", {})
    uploads = Path(uploads_dir)
    return [DocumentInfo(doc, str(c.meta.get("title") or doc), str(c.meta.get("district") or ""), c.meta.get("year"),
                         str(c.meta.get("doc_kind") or ""), counts[doc], added.get(doc, ""),
                         (uploads / doc).is_file())
            for doc, c in first.items()]


def safe_name(name: str) -> str:
    """A file name that is only a name: the last path part, control characters, separators and
    shell-unfriendly characters replaced, no leading dots, at most MAX_NAME_CHARS characters."""
    base = PurePosixPath(str(name).replace("\\", "/")).name
    base = "".join(ch for ch in unicodedata.normalize("NFC", base) if unicodedata.category(ch)[0] != "C")
    base = _UNSAFE.sub("_", base).strip("._ ")
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = stem.strip("._ ")[:MAX_NAME_CHARS - len(suffix) - 1]
    if not stem:
        raise GovragError(f"{name!r} is not a usable file name")
    return f"{stem}.{suffix.lower()}" if suffix else stem


def check_upload(path: Path, name: str, max_mb: float) -> str | None:
    """Why a file cannot be added (type, size), or None."""
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        kind = f"{suffix} files" if suffix else "files without an extension"
        return f"{name}: {kind} are not accepted; add {' '.join(UPLOAD_SUFFIXES)} documents"
    size = path.stat().st_size
    if size > max_mb * 2**20:
        return (f"{name}: {size / 2**20:.1f} MB is over the {max_mb:g} MB limit for one document; "
                "split it into smaller files")
    if size == 0:
        return f"{name}: the file is empty"
    return None


class Uploads:
    """Adds files to and removes them from an index, keeping the uploads folder in step."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.index_dir = Path(settings.index_dir)
        self.dir = Path(settings.uploads_dir)

    def add(self, index: Index, paths: list[str | Path], names: list[str] | None = None,
            on_progress: Callable[[int, int, str], None] | None = None) -> AddReport:
        """Check, copy and index files (`names`: the names people gave them, default the paths'
        own). A refused or unreadable file is reported and skipped; the rest go in, at once
        searchable by BM25. On any failure of the index write the copies are taken back."""
        started = time.perf_counter()
        report = AddReport()
        self.dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.dir, prefix=".incoming-"))
        try:
            staged = self._stage(index, paths, names or [Path(p).name for p in paths], staging, report, on_progress)
            if staged:
                self._commit(index, staged, report)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        report.seconds = time.perf_counter() - started
        return report

    def _stage(self, index: Index, paths: list[str | Path], names: list[str], staging: Path, report: AddReport,
               on_progress: Callable[[int, int, str], None] | None) -> list[Path]:
        """Copies of the acceptable files in `staging`, each read and chunked once to prove it
        is usable."""
        known = {sha: doc for doc, sha in index.manifest.get("documents", {}).items()}
        taken = self._folder_names(index)
        staged: list[Path] = []
        for i, (path, given) in enumerate(zip(map(Path, paths), names)):
            if on_progress is not None:
                on_progress(i, len(paths), given)
            try:
                name = safe_name(given)
                problem = self._problem(path, name, taken, staged)
                if problem is None:
                    shutil.copyfile(path, staging / name)
                    problem = self._unusable(staging / name, known)
            except (GovragError, OSError) as exc:
                name, problem = "", str(exc) if given in str(exc) else f"{given}: {exc}"
            if problem is None:
                staged.append(staging / name)
            else:
                report.skipped.append(problem)
        return staged

    def _folder_names(self, index: Index) -> set[str]:
        """Names of the documents in the index's source folders other than the uploads folder
        (indexed or excluded): an upload may not take one of them."""
        uploads = self.dir.resolve()
        folders = [Path(p) for p in index.manifest.get("sources", []) if Path(p).resolve() != uploads]
        return {f.name for folder in folders for f in _documents(folder)}

    def _problem(self, path: Path, name: str, taken: set[str], staged: list[Path]) -> str | None:
        """Why a file may not be added under this name (type, size, name taken), or None."""
        problem = check_upload(path, name, self.settings.max_upload_mb)
        if problem is None and name in taken:
            problem = f"{name}: a document of that name is already in a source folder; rename the file"
        if problem is None and any(name == p.name for p in staged):
            problem = f"{name}: the same name twice in one upload"
        return problem

    def _unusable(self, path: Path, known: dict[str, str]) -> str | None:
        """Why a copied file cannot be indexed (unreadable, empty, a duplicate), or None."""
        source = load_file(path)  # GovragError for an unreadable file
        if source.sha256 in known and known[source.sha256] != path.name:
            return f"{path.name}: same content as {known[source.sha256]}, which is already indexed"
        if not chunk_source(source, self.settings.chunk_tokens, self.settings.chunk_overlap_tokens):
            return f"{path.name}: no text left after removing page furniture"
        return None

    def _commit(self, index: Index, staged: list[Path], report: AddReport) -> None:
        """Move the staged files into the uploads folder and index; undo the move on failure."""
        backups: list[tuple[Path, Path | None]] = []
        try:
            for f in staged:
                target = self.dir / f.name
                backup = None
                if target.is_file():
                    backup = f.with_name(f".old-{f.name}")
                    os.replace(target, backup)
                os.replace(f, target)
                backups.append((target, backup))
            self.reindex(index, extra_source=True)
        except BaseException:
            for target, backup in reversed(backups):
                target.unlink(missing_ok=True)
                if backup is not None:
                    os.replace(backup, target)
            raise
        for target, backup in backups:
            (report.replaced if backup else report.added).append(target.name)

    def remove(self, index: Index, name: str) -> None:
        """Take a document out of the index; an uploaded one is also deleted from the uploads
        folder, one from another source folder is remembered as excluded (the file stays)."""
        docs = index.manifest.get("documents", {})
        if name not in docs:
            raise GovragError(f"no document named {name!r} in the index")
        if len(docs) == 1:
            raise GovragError(f"{name} is the only document; an index needs at least one")
        own = self.dir / Path(name).name
        if own.is_file():
            parked = self.dir / f".removed-{name}"
            os.replace(own, parked)
            try:
                self.reindex(index)
            except BaseException:
                os.replace(parked, own)
                raise
            parked.unlink()
        else:
            self.reindex(index, exclude=name)

    def reindex(self, index: Index, extra_source: bool = False, exclude: str | None = None) -> None:
        """The lexical index over the index's own sources (and the uploads folder)."""
        sources = [Path(p) for p in index.manifest.get("sources", [])]
        if extra_source and self.dir.resolve() not in [p.resolve() for p in sources]:
            sources.append(self.dir)
        sources = [p for p in sources if _documents(p)]
        excluded = set(index.manifest.get("excluded", [])) | ({exclude} if exclude else set())
        excluded -= {p.name for p in self.dir.glob("*") if p.is_file()}  # an upload brings a name back
        index_lexical(sources, self.settings, self.index_dir, excluded)


def _documents(path: Path) -> list[Path]:
    """The document files under a path ([] when it is missing or holds none)."""
    try:
        return find_files([path]) if path.exists() else []
    except GovragError:
        return []


def default_sources(settings: Settings) -> list[Path]:
    """What a new index is built from: the documents folder and any uploads."""
    return [Path(p) for p in (settings.docs, settings.uploads_dir) if _documents(Path(p))]


def sync_lexical(settings: Settings) -> BuildReport | None:
    """Bring the lexical index up to date with the documents it was built from (a new index:
    `default_sources`), so changed documents are searchable at once; vectors follow with
    `embed_pending`. None when none of its source folders exists any more (it is used as is)."""
    index_dir = Path(settings.index_dir)
    if current_version(index_dir) is None:
        return index_lexical(default_sources(settings) or [Path(settings.docs)], settings, index_dir)
    manifest = load_index(index_dir).manifest  # a damaged index is an error to show, not to overwrite
    sources = [Path(p) for p in manifest.get("sources", []) if Path(p).exists()]
    return index_lexical(sources, settings, index_dir, manifest.get("excluded", [])) if sources else None


class DenseWorker:
    """A background thread running `embed_pending` whenever kicked; `on_done` is called after
    each complete run (the Pipeline reloads the new version there)."""

    def __init__(self, settings: Settings, on_done: Callable[[], None]) -> None:
        self.settings = settings
        self.on_done = on_done
        self.done = 0
        self.total = 0
        self.error: str | None = None
        self._wanted = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def kick(self) -> None:
        """Embed what the live index lacks (now, or after the run in progress)."""
        with self._lock:
            self._wanted.set()
            self._idle.clear()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="govrag-embed", daemon=True)
                self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """True when no embedding is pending or running (within `timeout` seconds)."""
        return self._idle.wait(timeout)

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._wanted.is_set():
                    self._idle.set()
                    return
                self._wanted.clear()
            self.done = self.total = 0
            try:
                embed_pending(self.settings.index_dir, self.settings, on_progress=self._progress)
                self.error = None
            except (GovragError, OSError) as exc:
                self.error = str(exc)
                print(f"govrag: embedding stopped: {exc}", file=sys.stderr, flush=True)
            self.on_done()
