"""Synthetic labelled reviews whose label is given by a cue word: a task a tiny model learns
in seconds, for tests of the trainer's loops."""

from __future__ import annotations

import random

from schemas.events import LABELS

WORDS = {
    "positive": ["bagus", "enak", "mantap", "puas", "ramah"],
    "negative": ["jelek", "kecewa", "buruk", "mahal", "lambat"],
    "neutral": ["kemarin", "alamat", "jadwal", "informasi", "pengumuman"],
}
FILLER = ["tempat", "makanan", "harga", "pelayanan", "nya", "ini", "dan", "sekali", "di", "kota"]


def synthetic(n: int, seed: int) -> list[tuple[str, str]]:
    """Texts whose label is given by which word list they draw a cue word from."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = LABELS[i % 3]
        words = rng.sample(FILLER, 4) + [rng.choice(WORDS[label])]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows
