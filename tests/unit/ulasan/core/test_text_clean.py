"""clean(): the cleaning rules as tables, and properties over arbitrary Unicode (hypothesis)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ulasan.core.text import clean, clean_with_flags


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        # casing, whitespace
        ("Barang  BAGUS\n\tsekali ", "barang bagus sekali"),
        ("", ""),
        ("   \n ", ""),
        # repeats: 3+ become 2, digits exempt, punctuation too
        ("bagusss bangettt", "baguss bangett"),
        ("mantap!!!!! ??? ...", "mantap!! ?? .."),
        ("maaf, saat ini", "maaf, saat ini"),  # real double letters stay
        ("harga 1000000 rupiah", "harga 1000000 rupiah"),
        # URLs, e-mail, mentions, hashtags
        ("cek https://tokopedia.com/toko?id=1.", "cek url ."),
        ("lihat www.shopee.co.id, murah", "lihat url , murah"),
        ("link bit.ly/abc123 ya", "link url ya"),
        ("kunjungi tokopedia.com!", "kunjungi url !"),
        ("email ke cs.toko@gmail.com ya", "email ke email ya"),
        ("makasih @budi_99 dan @Toko.Resmi", "makasih user dan user .resmi"),
        ("harga @5000 per pcs", "harga @5000 per pcs"),
        ("#MantapJiwa #1 promo#gratis", "mantapjiwa 1 promo gratis"),
        ("C# dan ##", "c# dan ##"),
        # Unicode: NFKC, invisible characters, replacement characters
        ("ＢＡＧＵＳ！", "bagus!"),
        ("ba\u00adgus\u200b sekali", "bagus sekali"),
        ("a\x00b\x07c", "a b c"),
        ("berhari\ufffd gada", "berhari gada"),
        ("ﬁlm ½ jam", "film 1⁄2 jam"),
        # emoji: Indonesian CLDR names as words; a run of one emoji squeezed to two
        ("bagus 👍", "bagus jempol ke atas"),
        (
            "😍😍😍😍 mantap",
            "wajah tersenyum lebar bermata hati wajah tersenyum lebar bermata hati mantap",
        ),
        ("cinta 🇮🇩", "cinta bendera indonesia"),
        ("👨‍👩‍👧 liburan", "keluarga pria wanita anak perempuan liburan"),
        ("❤️ suka", "hati merah suka"),
    ],
)
def test_clean_rules(raw: str, cleaned: str) -> None:
    assert clean(raw) == cleaned


def test_lowercase_false_keeps_case_and_every_other_rule() -> None:
    assert clean("Barang BAGUSSS 👍 di https://x.com", lowercase=False) == (
        "Barang BAGUSS jempol ke atas di url"
    )
    assert clean("WWW.Toko.COM", lowercase=False) == "url"


def test_flags_say_what_cleaning_replaced() -> None:
    assert clean_with_flags("bagus 👍 https://x.com") == ("bagus jempol ke atas url", True, True)
    assert clean_with_flags("url dan emoji") == ("url dan emoji", False, False)
    # an e-mail address is not a URL even though it holds a domain
    assert clean_with_flags("a@b.com")[2] is False


# Pieces that trip normalisers: URL parts, joiners, selectors, combining marks, compatibility
# characters, regional indicators, case oddities.
_TRICKY = st.sampled_from(
    [
        *"aAbBiIwW .,:;!?/@#_-'\"()0123",
        "http://",
        "www.",
        ".com",
        ".co.id",
        "@x",
        "x@y.id",
        "😂",
        "👍",
        "🏻",
        "\u200d",
        "\ufe0f",
        "\u20e3",
        "\u0301",
        "\x00",
        "\t",
        "\n",
        "\ufffd",
        "\u00ad",
        "\u200b",
        "🇮",
        "🇩",
        "İ",
        "ǅ",
        "ẞ",
        "ß",
        "ﬀ",
        "Ⓜ",
        "ℌ",
        "①",
        "©",
        "\ud800",
    ]
)
_TRICKY_TEXT = st.lists(_TRICKY, max_size=40).map("".join)
_ANY_TEXT = st.one_of(st.text(max_size=200), _TRICKY_TEXT)


@settings(max_examples=300)
@given(_ANY_TEXT, st.booleans())
def test_clean_never_raises_and_is_idempotent(text: str, lowercase: bool) -> None:
    once = clean(text, lowercase=lowercase)
    assert isinstance(once, str)
    assert clean(once, lowercase=lowercase) == once


@settings(max_examples=300)
@given(_ANY_TEXT)
def test_clean_output_shape(text: str) -> None:
    out = clean(text)
    assert out == out.strip()
    assert "  " not in out
    assert all(c == " " or not c.isspace() for c in out)
    assert "\ufffd" not in out and "\x00" not in out
    assert out == out.lower()


@settings(max_examples=200)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=100))
def test_no_character_run_longer_than_two_except_digits(text: str) -> None:
    out = clean(text)
    for i in range(len(out) - 2):
        if out[i] == out[i + 1] == out[i + 2]:
            assert out[i].isdigit(), (text, out)


_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
_URL = st.builds(
    lambda scheme, host, tld, path: f"{scheme}{host}.{tld}{path}",
    st.sampled_from(["http://", "https://", "www.", ""]),
    _WORD,
    st.sampled_from(["com", "co.id", "id", "net", "org", "ly"]),
    st.sampled_from(["", "/", "/produk/123", "/?q=murah&x=1"]),
)


@settings(max_examples=200)
@given(st.lists(_WORD, max_size=8), st.lists(_URL, max_size=2), st.randoms())
def test_generated_urls_become_placeholders(words, urls, rnd) -> None:  # type: ignore[no-untyped-def]
    parts = words + urls
    rnd.shuffle(parts)
    cleaned, _, has_url = clean_with_flags(" ".join(parts))
    assert has_url == bool(urls)
    assert cleaned.split().count("url") == len(urls) + words.count("url")


def test_import_has_no_side_effects_and_no_training_stack() -> None:
    """Importing the text package neither builds the stemmer (nor loads the stem table) nor
    loads torch/transformers; the stemmer is built for the first word outside the table."""
    code = (
        "import sys\n"
        "import ulasan.core.text as t\n"
        "from ulasan.core.text import lexicon\n"
        "assert lexicon._stemmer.cache_info().currsize == 0\n"
        "assert lexicon.stopwords.cache_info().currsize == 0\n"
        "assert t.default_lexicon.cache_info().currsize == 0\n"
        "assert lexicon.stem_table.cache_info().currsize == 0\n"
        "bad = [m for m in ('torch', 'transformers', 'optimum', 'Sastrawi') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "t.process('barang bagus')\n"  # words of the shipped stem table: no stemmer needed
        "assert lexicon.stem_table.cache_info().currsize == 1\n"
        "assert lexicon._stemmer.cache_info().currsize == 0\n"
        "t.process('pengeblokiran zzzbarangkuu')\n"  # words outside it: Sastrawi, once built
        "assert lexicon._stemmer.cache_info().currsize == 1\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
