"""A small synthetic text classification set and a word-level tokenizer, so examples and tests need no download.

Each sentence belongs to one of four topics. Its words are drawn, one at a time, from the topic's own words (with
probability `signal`), from words shared by every topic, or from another topic's words; a share `label_noise` of
the labels is then replaced by a random other topic (rows only memorisation can fit, which makes membership
measurable). Everything is seeded and uses Python's own random generator, so a seed gives the same sentences on
every platform.
"""

import random

import torch
from torch import Tensor

TOPICS = {
    "sport": "match goal team score player coach league season win lose referee stadium ball pitch striker "
    "keeper final cup fans training",
    "weather": "rain snow wind storm sunny cloud forecast cold warm fog thunder humid frost breeze temperature "
    "drizzle heatwave degrees sky umbrella",
    "food": "bread cheese soup recipe oven salad pasta sauce spicy sweet dinner lunch bake flavour garlic "
    "pepper kitchen dessert fresh taste",
    "computing": "code server bug compile network database memory kernel python cloud update disk cache "
    "thread deploy backup screen keyboard login",
}
SHARED = "the a is was today very really it this that and but with on in at of for we they some more".split()
PAD, UNK = "<pad>", "<unk>"


class Vocabulary:
    """Word -> id, with 0 the padding token and 1 the unknown word."""

    def __init__(self, words: list[str]):
        self.words = [PAD, UNK, *sorted(set(words))]
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, texts: list[str], max_length: int) -> Tensor:
        """(N, max_length) int64 token ids: lower-cased words, cut to max_length, padded with 0."""
        out = torch.zeros(len(texts), max_length, dtype=torch.int64)  # (N, L)
        for row, text in enumerate(texts):
            ids = [self.index.get(w, 1) for w in text.lower().split()][:max_length]
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return out


def vocabulary() -> Vocabulary:
    return Vocabulary([w for words in TOPICS.values() for w in words.split()] + SHARED)


def sentences(n: int, *, seed: int = 0, signal: float = 0.4, label_noise: float = 0.1) -> tuple[list[str], Tensor]:
    """n sentences of 4 to 20 words and their topic labels (0..3) as int64 (N,)."""
    rng = random.Random(seed)
    names = list(TOPICS)
    words = {t: TOPICS[t].split() for t in names}
    texts, labels = [], []
    for _ in range(n):
        topic = rng.randrange(len(names))
        others = [t for i, t in enumerate(names) if i != topic]
        sentence = []
        for _ in range(rng.randint(4, 20)):
            draw = rng.random()
            if draw < signal:
                sentence.append(rng.choice(words[names[topic]]))
            elif draw < signal + 0.45:
                sentence.append(rng.choice(SHARED))
            else:
                sentence.append(rng.choice(words[rng.choice(others)]))
        if rng.random() < label_noise:
            topic = rng.choice([i for i in range(len(names)) if i != topic])
        texts.append(" ".join(sentence))
        labels.append(topic)
    return texts, torch.tensor(labels, dtype=torch.int64)


def dataset(
    n: int, holdout: int, *, max_length: int = 24, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor, Tensor, Vocabulary]:
    """(features (n, L), labels (n,), holdout features (h, L), holdout labels (h,), vocabulary)."""
    vocab = vocabulary()
    texts, labels = sentences(n + holdout, seed=seed)
    ids = vocab.encode(texts, max_length)  # (n + h, L)
    return ids[:n], labels[:n], ids[n:], labels[n:], vocab
