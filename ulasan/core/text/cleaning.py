"""The one text normaliser of ulasan: what the model sees, in training and serving alike."""

from __future__ import annotations

import functools
import re
import unicodedata

import emoji

#: Placeholders that stand in for URLs, e-mail addresses and @mentions: plain lower-case words,
#: so a WordPiece tokenizer trained on cleaned text keeps each as one token.
URL_PLACEHOLDER = "url"
EMAIL_PLACEHOLDER = "email"
USER_PLACEHOLDER = "user"
PLACEHOLDERS = frozenset({URL_PLACEHOLDER, EMAIL_PLACEHOLDER, USER_PLACEHOLDER})

# Top-level domains recognised in bare domains ("tokopedia.com", "bit.ly/x"): the common ones
# in Indonesian reviews; anything with a scheme ("https://") or "www." is a URL regardless.
_TLDS = "com|net|org|id|co|io|ly|me|info|biz|xyz|app|gl|to|site|online|store|shop|link|my|sg|tv"
# A URL runs to the next whitespace, less trailing sentence punctuation.
_URL_TAIL = r"""\S*(?<![.,;:!?)\]'"])"""
# A scheme of any kind, or "www." (also as squeezed to "ww.").
URL_RE = re.compile(rf"(?i)\b(?:[a-z][a-z0-9+.-]*://|w{{2,}}\.){_URL_TAIL}")
# A bare domain with a known TLD, not followed by more of a word or domain, and an optional
# path: "tokopedia.com", "bit.ly/abc".
DOMAIN_RE = re.compile(
    rf"(?i)\b[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
    rf"\.(?:{_TLDS})(?![\w-]|\.\w)(?:[/?#]{_URL_TAIL})?"
)
_TLD_HINT_RE = re.compile(rf"(?i)[a-z0-9]\.(?:{_TLDS})\b")
EMAIL_RE = re.compile(r"(?i)\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A handle starts with a letter or "_": "@budi_99" is a mention, "@5000" (a unit price) is not.
MENTION_RE = re.compile(r"@+(?=[^\W\d])\w+")
# Every "#" run before a word character goes: "#MantapJiwa" -> "MantapJiwa"; glued to a
# preceding word ("promo#gratis") it becomes a space.
HASHTAG_RE = re.compile(r"#+(?=\w)")
_GLUED_HASHTAG_RE = re.compile(r"(?<=\w)#+(?=\w)")
# 3+ repeats of one character become 2: "bagusss" -> "baguss", "!!!!" -> "!!". Digits are
# exempt (100000 is a price, not an elongation) and whitespace is collapsed separately.
REPEAT_RE = re.compile(r"([^\d\s])\1{2,}")
_ASCII_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_ZWJ = "\u200d"
# Kept through the control-character pass because emoji sequences need them.
_EMOJI_JOINERS = frozenset({_ZWJ, *map(chr, range(0xFE00, 0xFE10))})
_REPLACEMENT_CHAR = "\ufffd"
_JOINERS_TO_SPACE = dict.fromkeys(map(ord, _EMOJI_JOINERS), " ")
# Every emoji has a code point from U+203C up, or is (C) or (R): a cheap test before the
# emoji package's tokenizer (the slowest step of cleaning).
_EMOJI_HINT_RE = re.compile("[\u00a9\u00ae\u203c-\U0010ffff]")
_MAX_UNICODE_PASSES = 4


def clean(text: str, *, lowercase: bool = True) -> str:
    """The normalised text the model sees; never raises; ``clean(clean(x)) == clean(x)``.

    Rules, in order (docs/text.md has the reasons):

    1. Non-ASCII text only: Unicode NFKC; control characters (Cc) become spaces, other
       invisible characters (Cf, Co, Cn, Cs) and U+FFFD are removed; runs of one character
       are squeezed (so "😂😂😂😂" is two emoji); every emoji becomes its Indonesian CLDR name
       as words ("👍" -> "jempol ke atas").
    2. ASCII control characters become spaces.
    3. Lower-case when ``lowercase`` (the offline model is uncased).
    4. A character repeated 3+ times becomes 2 ("bagusss" -> "baguss"); digits are exempt.
    5. ``#`` of a hashtag is dropped, its word kept; then URLs -> ``url``, e-mail addresses
       -> ``email``, @mentions -> ``user``.
    6. Whitespace runs become one space; no leading or trailing space.
    """
    return clean_with_flags(text, lowercase=lowercase)[0]


def clean_with_flags(text: str, *, lowercase: bool = True) -> tuple[str, bool, bool]:
    """:func:`clean`, and whether it replaced an emoji and a URL (found in the same pass)."""
    has_emoji = False
    if not text.isascii():
        text, has_emoji = _normalise_unicode(text, lowercase=lowercase)
    if not text.isprintable():
        text = _ASCII_CONTROL_RE.sub(" ", text)
    if lowercase:
        text = text.lower()
    text = REPEAT_RE.sub(r"\1\1", text)
    if "#" in text:
        text = HASHTAG_RE.sub("", _GLUED_HASHTAG_RE.sub(" ", text))
    # Order matters: a URL may hold an "@", an e-mail address holds a domain.
    urls = domains = 0
    # Cheap literal checks first: the full patterns cost tens of microseconds per text.
    if "://" in text or "ww." in (text if lowercase else text.lower()):
        text, urls = URL_RE.subn(f" {URL_PLACEHOLDER} ", text)
    if "@" in text:
        text = EMAIL_RE.sub(f" {EMAIL_PLACEHOLDER} ", text)
        text = MENTION_RE.sub(f" {USER_PLACEHOLDER} ", text)
    if "." in text and _TLD_HINT_RE.search(text):
        text, domains = DOMAIN_RE.subn(f" {URL_PLACEHOLDER} ", text)
    return " ".join(text.split()), has_emoji, bool(urls or domains)


def _normalise_unicode(text: str, *, lowercase: bool) -> tuple[str, bool]:
    """Step 1 of :func:`clean`, repeated to a fixed point; and whether there was an emoji.

    One pass can expose work for the next (NFKC composes a letter with an accent once the
    variation selector between them is gone; NFKC of a lower-cased letter can be upper case),
    so the pass repeats until nothing changes: that is what makes clean() idempotent.
    """
    text, has_emoji = _unicode_pass(text, lowercase=lowercase)
    for _ in range(_MAX_UNICODE_PASSES):
        again, _ = _unicode_pass(text, lowercase=lowercase)
        if again == text:
            break
        text = again
    return text, has_emoji


def _unicode_pass(text: str, *, lowercase: bool) -> tuple[str, bool]:
    text = unicodedata.normalize("NFKC", text)
    if not text.isprintable():  # only then can there be control or invisible characters
        text = "".join(_visible(c) for c in text)
    text = text.replace(_REPLACEMENT_CHAR, "")
    if lowercase:
        text = text.lower()
    text = REPEAT_RE.sub(r"\1\1", text)
    has_emoji = bool(_EMOJI_HINT_RE.search(text)) and emoji.emoji_count(text) > 0
    if has_emoji:
        _load_emoji_names()
        text = emoji.replace_emoji(text, replace=_emoji_words)
    # Joiners left over outside an emoji become spaces: deleting them could fuse two
    # halves (two regional indicators) into a new emoji.
    return text.translate(_JOINERS_TO_SPACE), has_emoji


def _visible(char: str) -> str:
    if char in _EMOJI_JOINERS:
        return char
    category = unicodedata.category(char)
    if category == "Cc":
        return " "
    if category[0] == "C":
        return ""
    return char


@functools.cache
def _load_emoji_names() -> None:
    """Load the Indonesian emoji names once, on first use (not at import)."""
    emoji.config.load_language("id")


def _emoji_words(chars: str, data: dict[str, str]) -> str:
    """An emoji as the words of its Indonesian CLDR name, spaced off its neighbours."""
    name = data.get("id") or data.get("en") or ""
    words = str(name).strip(":").replace("_", " ").replace("-", " ")
    return f" {words} "
