"""Figures in text: find them, normalise them, and check answer figures against cited spans.

Handles Arabic numbers (1,115 / 3.8 / 95%), 万/亿 multipliers (1.6万余吨 == 16000吨), Chinese
numerals (一千一百一十五处, 两万人, 百分之九十五), dates (2022年10月23日, 12月底, 10月份) and
ranges (3-4个月, 3至5年).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
             "七": 7, "八": 8, "九": 9}
CN_SMALL = {"十": 10, "百": 100, "千": 1000}
CN_BIG = {"万": 10_000, "亿": 100_000_000}
MULTIPLIERS = {"万亿": 1e12, "亿": 1e8, "千万": 1e7, "百万": 1e6, "万": 1e4, "千": 1e3}
ENGLISH_MULTIPLIERS = {"thousand": 1e3, "million": 1e6, "billion": 1e9}
UNITS_PATH = Path(__file__).with_name("data") / "units_zh.tsv"


def _read_units(path: Path) -> tuple[list[str], set[str]]:
    """The unit file (see its header): every unit, longest first, and the counting ones."""
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]
    return sorted((unit for unit, _ in rows), key=len, reverse=True), {unit for unit, kind in rows if kind == "count"}


UNITS, COUNT_UNITS = _read_units(UNITS_PATH)
_CN_NUM_CHARS = "零〇一二三四五六七八九两十百千万亿"

_UNIT_RE = "|".join(map(re.escape, UNITS))
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
FIGURE_RE = re.compile(
    rf"(?P<date>(?:(?P<y>20\d{{2}}|19\d{{2}})\s*年\s*)?(?P<m>1[0-2]|0?[1-9])\s*月\s*(?:(?P<d>[1-3]?\d)\s*日|(?P<part>底|份|中旬|上旬|下旬|初|末))?)"
    rf"|(?P<pct_cn>百分之[{_CN_NUM_CHARS}点]+)"
    rf"|(?P<num>(?P<n1>{_NUMBER})(?:\s*(?:-|~|～|—|至|到)\s*(?P<n2>{_NUMBER}))?)\s*"
    rf"(?P<mult>万亿|千万|百万|亿|万|千(?!米|克|瓦|伏)|\s?(?:thousand|million|billion)\b)?\s*(?P<approx>余|多)?\s*"
    rf"(?P<unit>%|‰|{_UNIT_RE})?"
    rf"|(?P<cn>[{_CN_NUM_CHARS}][{_CN_NUM_CHARS}点]*[{_CN_NUM_CHARS}]|[一二两三四五六七八九十](?=(?:{_UNIT_RE})))"
    rf"(?P<cn_unit>{_UNIT_RE})"
)


@dataclass
class Found:
    """A figure found in text: where, as written, normalised value and unit."""

    text: str
    start: int
    end: int
    value: float
    unit: str  # "" when none; "%" for shares; "date" for dates (value = YYYYMMDD, 0 for unknown)


def cn_to_number(s: str) -> float | None:
    """Value of a Chinese numeral such as 一千一百一十五, 两万, 三点五, 十三; None if not one."""
    s = s.strip()
    if not s or any(c not in _CN_NUM_CHARS + "点" for c in s):
        return None
    if "点" in s:  # 三点五, 三点五亿 (the multiplier applies to the whole decimal)
        factor = 1
        while s and s[-1] in CN_BIG:
            factor *= CN_BIG[s[-1]]
            s = s[:-1]
        whole, _, frac = s.partition("点")
        w = cn_to_number(whole) if whole else 0
        if w is None or not frac or any(c not in CN_DIGITS for c in frac):
            return None
        return float(f"{int(w)}.{''.join(str(CN_DIGITS[c]) for c in frac)}") * factor
    total, section, digit = 0.0, 0.0, None
    for c in s:
        if c in CN_DIGITS:
            digit = CN_DIGITS[c] if digit is None else digit * 10 + CN_DIGITS[c]
        elif c in CN_SMALL:
            section += (1 if digit is None else digit) * CN_SMALL[c]
            digit = None
        elif c in CN_BIG:
            total = (total + section + (digit or 0)) * CN_BIG[c]
            section, digit = 0.0, None
    return total + section + (digit or 0)


def _num(s: str) -> float:
    return float(s.replace(",", ""))


def find_figures(text: str) -> list[Found]:
    """Every figure in `text`, in order. Bare 1-digit numbers without a unit are skipped
    (list markers such as "1." are not figures), and so are ordinals (第五次)."""
    found: list[Found] = []
    for m in FIGURE_RE.finditer(text):
        g = m.groupdict()
        raw = m.group(0).strip()
        if not g["date"] and text[max(0, m.start() - 1):m.start()] == "第":
            continue  # an ordinal (第五次会议, 第2批) names which one, not how many
        if g["date"]:
            y, mo, d = int(g["y"] or 0), int(g["m"]), int(g["d"] or 0)
            found.append(Found(raw, m.start(), m.end(), float(y * 10000 + mo * 100 + d), "date"))
        elif g["pct_cn"]:
            v = cn_to_number(g["pct_cn"][3:])
            if v is not None:
                found.append(Found(raw, m.start(), m.end(), v, "%"))
        elif g["num"]:
            mult = (g["mult"] or "").strip()
            factor = MULTIPLIERS.get(mult) or ENGLISH_MULTIPLIERS.get(mult, 1.0)
            unit = g["unit"] or ""
            if unit == "万元":
                unit, factor = "元", factor * 1e4
            if unit == "‰":
                unit, factor = "%", factor / 10
            if not unit and not mult and re.fullmatch(r"\d", g["n1"]):
                if text[m.end():m.end() + 1] in ".、.)" or not g["n2"]:
                    continue
            for key in ("n1", "n2"):
                if g[key]:
                    value = _num(g[key]) * factor
                    span = m.span(key)
                    found.append(Found(raw if key == "n1" and not g["n2"] else g[key] + (g["unit"] or ""),
                                       span[0], m.end(), value, unit))
        elif g["cn"]:
            v = cn_to_number(g["cn"])
            if v is not None and v > 0:
                unit = g["cn_unit"]
                if unit == "万元":
                    unit, v = "元", v * 1e4
                found.append(Found(raw, m.start(), m.end(), v, unit))
    return found


def same_figure(a: Found, b: Found) -> bool:
    """Equal values (1e-6 relative) with compatible units (equal, count units, or one unitless);
    a partial date (12月底) matches a full date with the same month."""
    if a.unit == "date" or b.unit == "date":
        if a.unit != b.unit:
            return False
        ya, ma, da = int(a.value) // 10000, int(a.value) // 100 % 100, int(a.value) % 100
        yb, mb, db = int(b.value) // 10000, int(b.value) // 100 % 100, int(b.value) % 100
        return ma == mb and (not ya or not yb or ya == yb) and (not da or not db or da == db)
    if abs(a.value - b.value) > 1e-6 * max(1.0, abs(a.value), abs(b.value)):
        return False
    return (not a.unit or not b.unit or a.unit == b.unit
            or (a.unit in COUNT_UNITS and b.unit in COUNT_UNITS))


def verify(figure: Found, sources: list[str]) -> int | None:
    """Index of the first source text that holds the figure, or None."""
    for i, source in enumerate(sources):
        if any(same_figure(figure, f) for f in find_figures(source)):
            return i
    return None
