"""LangChain adapter of the Retriever: `Retriever.as_langchain(k, filters)` returns one."""
from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever


class GovragRetriever(BaseRetriever):
    """LangChain adapter: `invoke(question)` -> Documents with chunk metadata and score."""

    retriever: Any
    k: int = 5
    filters: dict[str, Any] = {}

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[LCDocument]:
        return [
            LCDocument(page_content=h.chunk.text, id=h.chunk.id,
                       metadata={**h.chunk.meta, "id": h.chunk.id, "doc": h.chunk.doc, "kind": h.chunk.kind,
                                 "heading_path": h.chunk.heading_path, "start": h.chunk.start,
                                 "end": h.chunk.end, "score": h.score, "channels": h.channels})
            for h in self.retriever.search(query, k=self.k, filters=self.filters)
        ]
