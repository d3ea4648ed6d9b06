"""A retrain's per-epoch sampling weights: the new reviews up-weighted, the base corpus drawn
in a fresh share each epoch, never less than a set share of the epoch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from trainer.data import Example


def effective_base_weight(
    *, n_base: int, n_new: int, labelled: float, base: float, min_share: float
) -> float:
    """``base``, raised (at most to 1) so the base corpus makes up at least ``min_share`` of
    an epoch's samples next to ``n_new`` reviews of weight ``labelled``.

    The more new reviews a retrain gets, the more an epoch leans on the new domain and the more
    of the base corpus the model forgets; the gate scores base and new domain together. Session
    3's run with all 5,400 PRDECT-ID rows (2,987 trained on, base weight 0.15: 22 % base) gained
    10.1 points on the new domain and lost 5.7 on SmSA valid, and the gate refused it.
    """
    if n_base <= 0 or min_share <= 0:
        return base
    needed = min_share / (1 - min_share) * labelled * n_new / n_base
    return min(1.0, max(base, needed))


def sample_weight(
    new_train: Sequence[Example], *, labelled: float, base: float, class_balance: float = 0.0
) -> Callable[[Example], float]:
    """Per-epoch sampling weight of a training example: ``labelled`` for the new labelled
    reviews (matched by text: what the retrain's data file keeps), ``base`` for the rest.

    ``class_balance`` (0..1) tilts the new reviews' weight towards their rare classes: a new
    review of class ``c`` gets ``labelled * (mean_count / count_c) ** class_balance``,
    renormalised so the new reviews still sum to ``labelled`` each (0: no tilt; 1: every class
    of the new domain equally often per epoch). Rating-derived labels make the new domain's
    neutral class rare (rating 3), and macro-F1 weighs it like the others.
    """
    counts = Counter(str(e.label) for e in new_train)
    mean = len(new_train) / len(counts) if counts else 0.0
    tilt: dict[str, float] = {c: float((mean / n) ** class_balance) for c, n in counts.items()}
    norm = sum(tilt[str(e.label)] for e in new_train) / len(new_train) if new_train else 1.0
    by_text: dict[str, float] = {e.text: labelled * tilt[str(e.label)] / norm for e in new_train}

    def weight(example: Example) -> float:
        return by_text.get(example.text, base)

    return weight
