"""The reader's knowledge of question and report language, read once from
`rag/data/reader_cues.toml`. The bottom of the package: every other part imports from here,
this module imports no other part of the reader."""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..grounding import COUNT_UNITS, UNITS

CUES_PATH = Path(__file__).resolve().parents[1] / "data" / "reader_cues.toml"
_DATA = tomllib.loads(CUES_PATH.read_text(encoding="utf-8"))
_P = _DATA["patterns"]


def _zh(name: str) -> re.Pattern[str]:
    return re.compile(_P[name])


def _en(name: str) -> re.Pattern[str]:
    return re.compile(_P[name], re.I)


@dataclass(frozen=True)
class Marker:
    """One meaning of a figure (target / cumulative / achieved): its cue in source clauses and
    in Chinese and English questions."""

    clause: re.Pattern[str]
    zh: re.Pattern[str]
    en: re.Pattern[str]


# (type, Chinese pattern, English pattern), first match wins
ASKED = [(r["type"], re.compile(r["zh"]), re.compile(r["en"], re.I)) for r in _DATA["asked"]]
ASKED_TYPES = tuple(dict.fromkeys(t for t, _, _ in ASKED)) + ("fact",)
MARKERS = {name: Marker(re.compile(m["clause"]), re.compile(m["zh"]), re.compile(m["en"], re.I))
           for name, m in _DATA["markers"].items()}

PERIOD = _zh("period")
YEAR = _zh("year")
QUOTED_NAME = _zh("quoted_name")
SEVERAL = _en("several")
ACTUAL = _en("actual")
STATUS = _zh("status")
SUM = _en("sum")
SUM_ONLY = _en("sum_only")
PERSON_Q = _en("person")
TIME_LIMIT = _en("time_limit")
TIME_LIMIT_CELL = _en("time_limit_cell")
LEAD_CELL = _en("lead_cell")
PUBLISH = _en("publish")
DOC_SELF = _en("doc_self")
PLURAL_UNITS = _en("plural_units")
WH_ZH = _zh("wh_zh")
PREDICATE = _en("predicate")
MULTI_ZH = _zh("multi_zh")
MULTI_EN = _en("multi_en")
SPLIT_ZH = [re.compile(p) for p in _P["split_zh"]]
SPLIT_EN = [re.compile(p, re.I) for p in _P["split_en"]]
DEFINITION = re.compile(_P["definition"], re.S)
ANAPHOR = _zh("anaphor")
PLAN_HEADING = _zh("plan_heading")
REVIEW_HEADING = _zh("review_heading")
PER_UNIT = re.compile(rf"(?:{_P['per_unit_prefix']})({'|'.join(map(re.escape, UNITS))})|(亩|人|户)(?:产|均)")
PER_UNIT_EN = {word: unit for word, unit in _DATA["units"]["per_en"].items()}

QUESTION_WORDS = frozenset(_DATA["words"]["question"].split())
PHRASE_END = frozenset(_DATA["words"]["phrase_end"].split())
PERSON_TITLES = frozenset(_DATA["words"]["person_title"].split())
SURNAMES = frozenset(_DATA["words"]["surnames"].split())
NAME_ENDS = tuple(_DATA["words"]["name_end"].split())
AMOUNT_UNITS = frozenset(_DATA["units"]["amount"])
SHARE_UNITS = frozenset(_DATA["units"]["share"])
QUANTITY_UNITS = frozenset(COUNT_UNITS) | frozenset(_DATA["units"]["quantity"])
COUNTED_ZH = re.compile(rf"(?:多少|几)(?:万|亿)?(?:{'|'.join(map(re.escape, UNITS))})([^,,。??;;、]{{2,20}})")
ASKED_UNIT_ZH = re.compile(rf"(?:多少|几)(?:万|亿)?({'|'.join(map(re.escape, UNITS))})")

CJK = re.compile(r"[\u4e00-\u9fff]")
SENTENCE = re.compile(r"[^。!?;!?;\n]+[。!?;!?;]*")
CLAUSE = re.compile(r"[^,,。!?;!?;\n:]+")
