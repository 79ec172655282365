"""Seeded, plausible-sounding text: titles, sticker captions, voice-over sentences, creator handles.

A tiny grammar is enough: the text encoder only needs strings that differ in content when the
corpus says they do, and read like something a person would post.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_SUBJECTS = (
    "my grandmother", "the new intern", "our cat", "a street musician", "the mayor", "my little brother",
    "the coach", "a retired pilot", "the neighbour", "this tiny robot", "a lost tourist", "the night baker",
    "my best friend", "the chess club", "a sleepy fox", "the science teacher", "an old fisherman",
)
_VERBS = (
    "painted", "fixed", "found", "built", "cooked", "sold", "lost", "rescued", "planted", "tested",
    "drew", "carried", "repaired", "discovered", "delivered", "photographed", "measured",
)
_OBJECTS = (
    "a wooden boat", "three loaves of bread", "the broken piano", "a giant kite", "a box of old letters",
    "a garden of tomatoes", "a bicycle with no brakes", "the map of the old town", "a paper lantern",
    "a pair of red boots", "a jar of honey", "the school mural", "a clock tower model", "a wild sunflower",
)
_PLACES = (
    "by the harbour", "in the attic", "behind the train station", "on the rooftop", "at the night market",
    "in a tiny kitchen", "near the old bridge", "at the village fair", "in the snow", "under the pier",
)
_TIMES = (
    "last Sunday", "before sunrise", "in under an hour", "during the storm", "after twelve attempts",
    "on the first try", "yesterday", "over the summer", "at midnight", "in one afternoon",
)
_TITLE_TEMPLATES = (
    "How {subject} {verb} {object}",
    "{Subject} {verb} {object} {time}",
    "You won't believe what {subject} {verb} {place}",
    "Day {n}: {subject} {verb} {object}",
    "The story of {object} {place}",
    "Watch {subject} handle {object} {time}",
    "{n} things I learned when {subject} {verb} {object}",
)
_STICKER_TEMPLATES = (
    "wait for it", "part {n}", "day {n} of {n2}", "{object} {place}", "{subject} did it again",
    "this took {n} hours", "best moment at {n}s", "{time}!", "true story", "sound on",
)
_TEMPLATE_TITLES = (
    "Story time #{n}", "Did you know? #{n}", "Daily thought {n}", "Quote of the day #{n}",
    "Fun fact {n}", "Motivation {n}", "Tiny tales {n}",
)
_QUOTES = (
    "Small steps every day beat big plans someday",
    "{Subject} {verb} {object} {time}",
    "Nobody noticed {object} {place} until {subject} did",
    "Rule {n}: never trust {subject} with {object}",
    "{Subject} says: keep {object} away from the rain",
    "If {subject} can do it {time}, so can you",
)


def pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _fill(rng: np.random.Generator, template: str) -> str:
    subject = pick(rng, _SUBJECTS)
    return template.format(
        subject=subject,
        Subject=subject[0].upper() + subject[1:],
        verb=pick(rng, _VERBS),
        object=pick(rng, _OBJECTS),
        place=pick(rng, _PLACES),
        time=pick(rng, _TIMES),
        n=int(rng.integers(2, 60)),
        n2=int(rng.integers(60, 366)),
    )


def sentence(rng: np.random.Generator) -> str:
    """One voice-over sentence."""
    text = _fill(rng, "{Subject} {verb} {object} {place} {time}")
    return text + "."


def sentences_for(rng: np.random.Generator, duration_s: float, words_per_s: float = 2.6) -> tuple[str, ...]:
    """Enough sentences to fill about `duration_s` of speech."""
    out: list[str] = []
    words = 0
    while words < duration_s * words_per_s * 0.9:
        out.append(sentence(rng))
        words += len(out[-1].split())
    return tuple(out)


def title(rng: np.random.Generator) -> str:
    return _fill(rng, pick(rng, _TITLE_TEMPLATES))


def sticker(rng: np.random.Generator) -> str:
    return _fill(rng, pick(rng, _STICKER_TEMPLATES))


def template_title(rng: np.random.Generator) -> str:
    """A generic title of the kind template videos carry: it says nothing about the content."""
    return _fill(rng, pick(rng, _TEMPLATE_TITLES))


def quote(rng: np.random.Generator) -> str:
    """A caption that *is* the content of a caption-template video."""
    return _fill(rng, pick(rng, _QUOTES))


def creator_id(rng: np.random.Generator) -> str:
    return f"creator-{int(rng.integers(16**6)):06x}"
