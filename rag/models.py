"""The data contracts shared by every stage (see DESIGN.md, "Contracts").

Everything here is plain data that round-trips through JSON; nothing is pickled.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class GovragError(Exception):
    """An error in use (bad input, missing or damaged index): shown to the user as one line."""


@dataclass
class Chunk:
    """One retrievable unit: a task row, a numbered task item or a report section."""

    id: str
    doc: str
    kind: str  # "task_row" | "task_item" | "section"
    text: str
    heading_path: list[str]
    start: int
    end: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def embed_text(self) -> str:
        """The text given to the encoders: title and heading path before the chunk text."""
        parts = [self.meta.get("title", ""), " > ".join(self.heading_path), self.text]
        return "\n".join(p for p in parts if p)

    def about_year(self, years: list[int]) -> bool:
        """Whether the chunk's document is about one of `years`: its year, or for a news article
        any year it names (a headline may name the year it compares with)."""
        meta = self.meta
        return meta.get("year") in years or bool(set(years) & set(meta.get("years", ())))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Chunk":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


@dataclass
class Hit:
    """A retrieved chunk with its fused score and the rank it had in each channel (1-based)."""

    chunk: Chunk
    score: float
    channels: dict[str, int] = field(default_factory=dict)
    raw: dict[str, float] = field(default_factory=dict)  # each channel's own score (cosine, BM25)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.chunk.id, "score": round(self.score, 6), "channels": self.channels}


@dataclass
class Citation:
    """Where a claim of the answer comes from: a chunk and the quoted span inside it."""

    n: int  # the number shown in the answer as [n]
    chunk_id: str
    doc: str
    title: str
    heading_path: list[str]
    quote: str
    start: int  # offsets of the quote in the cleaned document text
    end: int
    score: float
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Figure:
    """A figure written in the answer, normalised, and whether a cited span holds it."""

    text: str
    value: float | None
    unit: str
    verified: bool
    citation: int | None  # the Citation.n it was found in


@dataclass
class Answer:
    """The result of one question (DESIGN.md "Answer")."""

    question: str
    answer: str
    citations: list[Citation] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    abstained: bool = False
    mode: str = "extractive"  # "extractive" | "llm"
    timings: dict[str, float] = field(default_factory=dict)
    lang: str = "zh"
    notes: list[str] = field(default_factory=list)  # e.g. "LLM unreachable; extractive answer"
    passages: list[Citation] = field(default_factory=list)  # closest passages when abstaining
    confidence: float | None = None  # the reader's calibrated probability that its answer is right
    retrieval: str = "hybrid"  # "hybrid" (dense + BM25) | "lexical" (BM25 only: vectors not ready yet)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
