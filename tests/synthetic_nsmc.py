"""A few hundred NSMC-format reviews made up from word lists: train_bert's stages run on them
in seconds (the real files make the tiny preset take most of a minute), and the sentiment is
in the words, so the stages have something to learn."""

from __future__ import annotations

import random
from pathlib import Path

from scripts.nsmc import TEST_FILE, TRAIN_FILE, UNLABELED_FILE

POSITIVE = ["재밌다", "최고", "감동적", "좋아요", "명작", "추천", "훌륭한", "웃겼다"]
NEGATIVE = ["지루하다", "최악", "별로", "아깝다", "실망", "졸작", "유치한", "짜증"]
NEUTRAL = ["영화", "배우", "연기", "스토리", "정말", "진짜", "그냥", "오늘", "감독", "음악"]


def review(rng: random.Random, label: int) -> str:
    """Two to six neutral words around one or two words of the label's sentiment."""
    words = rng.sample(NEUTRAL, rng.randint(2, 6))
    for _ in range(rng.randint(1, 2)):
        words.insert(rng.randrange(len(words) + 1), rng.choice((NEGATIVE, POSITIVE)[label]))
    return " ".join(words)


def write_nsmc(out: Path, train_rows: int = 600, test_rows: int = 150,
               unlabeled_rows: int = 400, seed: int = 0) -> Path:  # fmt: skip
    """ratings_train.txt, ratings_test.txt and unlabeled.txt in `out`; returns `out`."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows, first_id in ((TRAIN_FILE, train_rows, 1), (TEST_FILE, test_rows, 10**6)):
        lines = ["id\tdocument\tlabel"]
        for i in range(rows):
            label = rng.randint(0, 1)
            lines.append(f"{first_id + i}\t{review(rng, label)}\t{label}")
        (out / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    unlabeled = [review(rng, rng.randint(0, 1)) for _ in range(unlabeled_rows)]
    (out / UNLABELED_FILE).write_text("\n".join(unlabeled) + "\n", encoding="utf-8")
    return out
