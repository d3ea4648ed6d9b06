"""The sentiment lexicon and the negation-aware counting of its words in cleaned text."""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ulasan.core.text.cleaning import PLACEHOLDERS
from ulasan.core.text.errors import LexiconError

#: Words that negate what follows: "tidak bagus" counts as negative, "tanpa cacat" as positive.
#: Sastrawi's stopword list holds some of these; they are never dropped as stopwords.
NEGATORS = frozenset(
    {
        "tidak", "tak", "tdk", "tida", "bukan", "bkn", "belum", "blm", "blum", "jangan", "jgn",
        "kurang", "krg", "tanpa", "gak", "ga", "gk", "nggak", "ngga", "nggk", "enggak", "engga",
        "enggk", "ndak", "nda", "kagak", "kaga", "tiada",
    }
)  # fmt: skip
#: Words in Sastrawi's stopword list that carry an evaluation in reviews ("enak", "percuma",
#: "lama" as in a slow delivery): kept, so that the lexicon builder can judge them.
EVALUATIVE_STOPWORDS = frozenset(
    {
        "baik", "enak", "benar", "betul", "percuma", "keterlaluan", "berlebihan", "pantas",
        "lama", "kelamaan", "lamanya", "masalah", "mampu", "jelas", "kecil", "besar",
    }
)  # fmt: skip
#: How many content (non-stopword) tokens after a negator it reaches; a clause break ends it.
NEGATION_WINDOW = 3
#: Lexicon file format written by :meth:`Lexicon.save`.
FORMAT = 1
DEFAULT_RESOURCE = "resources/lexicon.json"
#: Sastrawi's stem of every word of the training corpora (``token<TAB>stem`` lines, gzip):
#: ``python -m trainer.lexicon stems`` writes it; a test holds it to the live stemmer.
STEMS_RESOURCE = "resources/stems.tsv.gz"

STOP, NEGATOR, CONTENT = 0, 1, 2
#: (kind, candidate stems): a content token has its stem, then (for "baguss") the stem of the
#: token with doubled letters made single; stopwords and negators have no stems.
TokenInfo = tuple[int, tuple[str, ...]]
Analyser = Callable[[str], TokenInfo]

# A word (letters, digits, "_", joined by hyphens as in "enak-enak") or a clause break.
_TOKEN_RE = re.compile(r"(\w+(?:-\w+)*)|[.,!?;:]")
_LEXICAL_RE = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
_DOUBLE_RE = re.compile(r"([^\W\d_])\1")
_TOKEN_CACHE_SIZE = 1 << 16
_STOP_INFO: TokenInfo = (STOP, ())
_NEGATOR_INFO: TokenInfo = (NEGATOR, ())


@dataclass(frozen=True)
class Lexicon:
    """Positive and negative word sets (Sastrawi stems) and a content-hash ``version``.

    ``meta`` (how it was built, per-word scores) travels in the file but is not part of the
    version. A word is in at most one set.
    """

    positive: frozenset[str]
    negative: frozenset[str]
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    version: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "positive", frozenset(self.positive))
        object.__setattr__(self, "negative", frozenset(self.negative))
        both = self.positive & self.negative
        if both:
            raise LexiconError(
                f"words in both the positive and the negative set: {sorted(both)[:10]}"
            )
        object.__setattr__(self, "version", content_version(self.positive, self.negative))

    def polarity(self, stems: Iterable[str]) -> int:
        """+1, -1 or 0 for the first of ``stems`` found in the lexicon."""
        for stem in stems:
            if stem in self.positive:
                return 1
            if stem in self.negative:
                return -1
        return 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "positive": sorted(self.positive),
            "negative": sorted(self.negative),
            "meta": dict(self.meta),
        }

    def save(self, path: str | Path) -> Path:
        """Write the lexicon as JSON (sorted words, so the file diffs well); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=1, sort_keys=True)
        path.write_text(text + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Lexicon:
        """Read a lexicon written by :meth:`save`; raises :class:`LexiconError` when it is
        missing, unreadable, or its words do not match its recorded version."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise LexiconError(f"cannot read lexicon {path}: {exc}") from exc
        return cls.from_json(text, origin=str(path))

    @classmethod
    def from_json(cls, text: str, *, origin: str = "<string>") -> Lexicon:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LexiconError(f"lexicon {origin} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise LexiconError(f"lexicon {origin} is not a format-{FORMAT} lexicon file")
        words = {}
        for key in ("positive", "negative"):
            value = data.get(key)
            if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
                raise LexiconError(f"lexicon {origin}: {key!r} must be a list of words")
            words[key] = frozenset(value)
        meta = data.get("meta") or {}
        if not isinstance(meta, dict):
            raise LexiconError(f"lexicon {origin}: 'meta' must be an object")
        lexicon = cls(words["positive"], words["negative"], meta=meta)
        if data.get("version") != lexicon.version:
            raise LexiconError(
                f"lexicon {origin} records version {data.get('version')!r} but its words hash "
                f"to {lexicon.version!r}: it was edited by hand; rebuild it with "
                "`python -m trainer.lexicon build`"
            )
        return lexicon


def content_version(positive: Iterable[str], negative: Iterable[str]) -> str:
    """``lex-`` and 12 hex digits of the SHA-256 of the sorted word sets."""
    canonical = json.dumps(
        {"negative": sorted(negative), "positive": sorted(positive)},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return "lex-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


@functools.cache
def default_lexicon() -> Lexicon:
    """The lexicon shipped with ulasan (built from SmSA train), loaded once."""
    resource = resources.files("ulasan.core.text").joinpath(DEFAULT_RESOURCE)
    return Lexicon.from_json(resource.read_text(encoding="utf-8"), origin=str(resource))


@functools.cache
def stopwords() -> frozenset[str]:
    """Sastrawi's Indonesian stopwords without the negators and the evaluative words."""
    from Sastrawi.StopWordRemover.StopWordRemoverFactory import StopWordRemoverFactory

    words = frozenset(StopWordRemoverFactory().get_stop_words())
    return words - NEGATORS - EVALUATIVE_STOPWORDS


@functools.cache
def _stemmer() -> Any:
    """Sastrawi's stemmer without its own unbounded cache (ours is bounded), built on first use."""
    from Sastrawi.Dictionary.ArrayDictionary import ArrayDictionary
    from Sastrawi.Stemmer.Stemmer import Stemmer
    from Sastrawi.Stemmer.StemmerFactory import StemmerFactory

    return Stemmer(ArrayDictionary(StemmerFactory().get_words()))


def analyse_token(token: str) -> TokenInfo:
    """What a lower-case word is to the lexicon: a stopword, a negator, or content with stems.

    Not LRU-cached (the shipped stem table first, Sastrawi's stemmer for words outside it):
    use :func:`token_info` on hot paths.
    """
    return _analyse(token, _stem)


def analyse_token_sastrawi(token: str) -> TokenInfo:
    """:func:`analyse_token` with Sastrawi's stemmer on every word, the table unused (the text
    benchmark's baseline); the same result."""
    return _analyse(token, _sastrawi_stem)


def _analyse(token: str, stem_of: Callable[[str], str]) -> TokenInfo:
    if token in NEGATORS:
        return _NEGATOR_INFO
    if token in stopwords() or token in PLACEHOLDERS or not _LEXICAL_RE.fullmatch(token):
        return _STOP_INFO
    single = _DOUBLE_RE.sub(r"\1", token)
    if single != token and single in NEGATORS:
        return _NEGATOR_INFO  # "gakk", "tidakk" (clean() leaves two of a repeated letter)
    stem = stem_of(token)
    if len(stem) < 2:
        return _STOP_INFO
    if single == token:
        return (CONTENT, (stem,))
    alternative = stem_of(single)
    return (CONTENT, (stem,) if alternative == stem else (stem, alternative))


def _stem(token: str) -> str:
    known = stem_table().get(token)
    return known if known is not None else _sastrawi_stem(token)


def _sastrawi_stem(token: str) -> str:
    if not token.isascii():
        return token  # Sastrawi's rules are for a-z; keep other scripts whole
    return str(_stemmer().stem_word(token))


@functools.cache
def stem_table() -> Mapping[str, str]:
    """The shipped table of Sastrawi's stems (what its stemmer returns, computed once at build
    time): a worker starts with the corpora's vocabulary stemmed instead of paying ~90 µs of
    pure-Python stemming for each word the first time it sees it. Words not in it are stemmed
    as before. An absent resource is an empty table."""
    resource = resources.files("ulasan.core.text").joinpath(STEMS_RESOURCE)
    if not resource.is_file():
        return {}
    with resource.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as fh:
        return dict(line.rstrip("\n").split("\t", 1) for line in fh if line.strip())


def stemmable_tokens(cleaned_texts: Iterable[str]) -> set[str]:
    """The tokens of cleaned texts that reach the stemmer (content words, a-z, and their
    single-letter forms such as "bagus" for "baguss"): what a stem table should hold. Found by
    running :func:`analyse_token`'s own rules with a stemmer that records what it is asked."""
    out: set[str] = set()

    def record(token: str) -> str:
        if token.isascii():
            out.add(token)
        return token

    for text in cleaned_texts:
        for match in _TOKEN_RE.finditer(text.lower()):
            if match.group(1) is not None:
                _analyse(match.group(1), record)
    return out


def write_stem_table(tokens: Iterable[str], path: Path) -> int:
    """Stem ``tokens`` with Sastrawi and write the table (sorted, gzip without a timestamp, so
    the same tokens give the same bytes); returns how many entries."""
    stemmer = _stemmer()
    lines = [f"{t}\t{stemmer.stem_word(t)}\n" for t in sorted(set(tokens))]
    with path.open("wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as fh:
        fh.write("".join(lines).encode("utf-8"))
    return len(lines)


#: :func:`analyse_token` behind a bounded LRU cache: the stemmer runs once per distinct token.
token_info: Analyser = functools.lru_cache(maxsize=_TOKEN_CACHE_SIZE)(analyse_token)


def sentiment_counts(
    cleaned: str, lexicon: Lexicon, *, analyse: Analyser = token_info
) -> tuple[int, int]:
    """(positive, negative) lexicon words in cleaned text, negation applied.

    Negation rule: a negator flips the polarity of the first lexicon word among the next
    :data:`NEGATION_WINDOW` content tokens of the same clause (stopwords do not count toward
    the window; ``. , ! ? ; :`` end a clause). "tidak bagus" is one negative word, "tidak
    ada yang kecewa" one positive word. A negator does not flip another negator.
    """
    return _count(_TOKEN_RE.finditer(cleaned.lower()), lexicon, analyse)[:2]


def _count(
    matches: Iterator[re.Match[str]], lexicon: Lexicon, analyse: Analyser
) -> tuple[int, int, int, int]:
    """(positive, negative, words, letters of words) in one pass over token matches."""
    positive = negative = words = letters = 0
    window = 0
    pos_set, neg_set = lexicon.positive, lexicon.negative
    for match in matches:
        token = match.group(1)
        if token is None:
            window = 0
            continue
        words += 1
        letters += len(token)
        kind, stems = analyse(token)
        if kind == CONTENT:
            polarity = 0
            for stem in stems:
                if stem in pos_set:
                    polarity = 1
                    break
                if stem in neg_set:
                    polarity = -1
                    break
            if polarity:
                if window:
                    polarity = -polarity
                    window = 0
                if polarity > 0:
                    positive += 1
                else:
                    negative += 1
            elif window:
                window -= 1
        elif kind == NEGATOR:
            window = NEGATION_WINDOW
    return positive, negative, words, letters


def content_stems(cleaned: str, *, analyse: Analyser = token_info) -> Iterator[str]:
    """The stems of cleaned text that a lexicon is built from, in order.

    Stopwords, negators and the tokens inside a negation's window are left out: "tidak
    bagus" must not make "bagus" look negative.
    """
    window = 0
    for match in _TOKEN_RE.finditer(cleaned.lower()):
        token = match.group(1)
        if token is None:
            window = 0
            continue
        kind, stems = analyse(token)
        if kind == NEGATOR:
            window = NEGATION_WINDOW
        elif kind == CONTENT:
            if window:
                window -= 1
            else:
                yield stems[0]
