"""Another program using govrag's public retrieval API, as an app would: prints the hits for a
question as JSON lines. Only `rag.retriever.Retriever` is imported from the project.

    python tests/public_api_script.py INDEX_DIR "QUESTION" [--k N]
"""
from __future__ import annotations

import argparse
import json
import sys

from rag.retriever import Retriever


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("index")
    parser.add_argument("question")
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    try:
        retriever = Retriever.load(args.index)
    except Exception as exc:  # the API raises one clear error naming the fix
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for rank, hit in enumerate(retriever.search(args.question, k=args.k), start=1):
        chunk = hit.chunk
        print(json.dumps({"rank": rank, "id": chunk.id, "doc": chunk.doc, "score": round(hit.score, 6),
                          "heading_path": chunk.heading_path, "text": chunk.text}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
