"""What the review page shows, kept in memory: the newest score of each video with the records that explain
it (its publish event and its candidate's, the teacher's shadow score, dead letters, reviewers' verdicts).

Pure and thread-safe: the Kafka reader (rci.review.reader) adds records from its thread, the web handlers
read pages from theirs. Bounded: past `max_scores` videos the oldest scored ones are forgotten.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

from rci.streams.contracts import DeadLetterRecord, PublishedEvent, ReviewVerdict, ScoreRecord, ShadowRecord


class View(StrEnum):
    """The list's filters."""

    ALL = "all"
    DEBOOSTED = "deboosted"
    NEAR = "near"  # within NEAR_MARGIN of the threshold: where a threshold change flips decisions
    DISAGREE = "disagree"  # the teacher decides otherwise
    DEAD_LETTERED = "dlq"


NEAR_MARGIN = 0.1


@dataclass(frozen=True)
class Row:
    score: ScoreRecord
    shadow: ShadowRecord | None
    verdict: ReviewVerdict | None  # the latest, for this score's candidate


@dataclass(frozen=True)
class Page:
    view: View
    number: int  # from 1
    pages: int
    total: int
    rows: list[Row]
    dead_letters: list[tuple[str, DeadLetterRecord]]  # (key, letter), for View.DEAD_LETTERED
    counts: dict[str, int]  # videos in each view (the list's tabs), from the same rows as the page


@dataclass(frozen=True)
class VideoDetail:
    score: ScoreRecord
    event: PublishedEvent | None
    candidate_event: PublishedEvent | None
    shadow: ShadowRecord | None
    verdicts: list[ReviewVerdict]
    history: list[ScoreRecord]  # every score of this video seen, oldest first (replays, new models)


class ReviewIndex:
    def __init__(self, max_scores: int = 100_000, max_dead_letters: int = 10_000) -> None:
        self.max_scores = max_scores
        self.max_dead_letters = max_dead_letters
        self._lock = threading.Lock()
        self._scores: OrderedDict[str, list[ScoreRecord]] = OrderedDict()  # newest scored last
        self._events: dict[str, PublishedEvent] = {}
        self._shadow: dict[tuple[str, str | None], ShadowRecord] = {}
        self._verdicts: dict[str, list[ReviewVerdict]] = {}
        self._dead: list[tuple[str, DeadLetterRecord]] = []

    # --- from the topics -----------------------------------------------------------------------
    def add_score(self, score: ScoreRecord) -> None:
        with self._lock:
            history = self._scores.pop(score.video_id, [])
            self._scores[score.video_id] = [*history, score]
            while len(self._scores) > self.max_scores:
                forgotten, _ = self._scores.popitem(last=False)
                self._verdicts.pop(forgotten, None)

    def add_event(self, event: PublishedEvent) -> None:
        with self._lock:
            self._events[event.video_id] = event

    def add_shadow(self, record: ShadowRecord) -> None:
        with self._lock:
            self._shadow[(record.video_id, record.candidate_id)] = record

    def add_verdict(self, verdict: ReviewVerdict) -> None:
        with self._lock:
            self._verdicts.setdefault(verdict.video_id, []).append(verdict)

    def add_dead_letter(self, key: str, letter: DeadLetterRecord) -> None:
        with self._lock:
            self._dead.append((key, letter))
            del self._dead[: max(0, len(self._dead) - self.max_dead_letters)]

    # --- for the pages ---------------------------------------------------------------------------
    def page(self, view: View, number: int = 1, per_page: int = 50) -> Page:
        """One page of a view, and every view's count: one pass over the newest scores."""
        with self._lock:
            latest = [self._row(history[-1]) for history in reversed(self._scores.values())]
            letters = self._dead[::-1]
        counts = {v.value: (len(letters) if v is View.DEAD_LETTERED else sum(_shown(r, v) for r in latest)) for v in View}
        if view is View.DEAD_LETTERED:
            pages, number = _paging(len(letters), number, per_page)
            return Page(view, number, pages, len(letters), [], letters[(number - 1) * per_page : number * per_page], counts)
        rows = [row for row in latest if _shown(row, view)]
        pages, number = _paging(len(rows), number, per_page)
        return Page(view, number, pages, len(rows), rows[(number - 1) * per_page : number * per_page], [], counts)

    def video(self, video_id: str) -> VideoDetail | None:
        with self._lock:
            history = self._scores.get(video_id)
            if not history:
                return None
            score = history[-1]
            return VideoDetail(
                score=score,
                event=self._events.get(video_id),
                candidate_event=self._events.get(score.candidate_id) if score.candidate_id else None,
                shadow=self._shadow.get((video_id, score.candidate_id)),
                verdicts=list(self._verdicts.get(video_id, [])),
                history=list(history),
            )

    def _row(self, score: ScoreRecord) -> Row:
        verdicts = [v for v in self._verdicts.get(score.video_id, []) if v.candidate_id == score.candidate_id]
        return Row(score, self._shadow.get((score.video_id, score.candidate_id)), verdicts[-1] if verdicts else None)


def _shown(row: Row, view: View) -> bool:
    score = row.score
    return {
        View.ALL: True,
        View.DEBOOSTED: score.deboost,
        View.NEAR: abs(score.score - score.threshold) <= NEAR_MARGIN,
        View.DISAGREE: row.shadow is not None and not row.shadow.agree,
        View.DEAD_LETTERED: False,
    }[view]


def _paging(total: int, number: int, per_page: int) -> tuple[int, int]:
    """(pages, the page number clamped into 1..pages)."""
    pages = max(1, -(-total // per_page))
    return pages, min(max(1, number), pages)
