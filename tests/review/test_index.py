"""The review page's in-memory index: filters, paging, bounds, what one video's page gathers."""

from __future__ import annotations

from rci.review.index import ReviewIndex, View
from rci.streams.contracts import ReviewVerdict
from tests.review.conftest import dead_letter, event, score, shadow


def verdict(video_id: str, candidate_id: str | None, what: str = "overturn") -> ReviewVerdict:
    return ReviewVerdict(video_id=video_id, candidate_id=candidate_id, verdict=what, reason="r", reviewer="m",
                         score=0.9, deboost=True, model_version="m", reviewed_at="2026-12-01T11:00:00Z")  # fmt: skip


def test_each_view_shows_what_its_name_says_newest_first() -> None:
    index = ReviewIndex()
    for s in (score("a", 0.95), score("b", 0.05), score("c", 0.55), score("d", 0.45, candidate_id=None)):
        index.add_score(s)
    index.add_shadow(shadow(score("a", 0.95), teacher=0.2, agree=False))
    index.add_shadow(shadow(score("b", 0.05), teacher=0.1, agree=True))
    index.add_dead_letter("k", dead_letter(7))
    ids = lambda view: [r.score.video_id for r in index.page(view).rows]  # noqa: E731
    assert ids(View.ALL) == ["d", "c", "b", "a"]
    assert ids(View.DEBOOSTED) == ["c", "a"]
    assert ids(View.NEAR) == ["d", "c"]  # within 0.1 of the 0.5 threshold
    assert ids(View.DISAGREE) == ["a"]
    letters = index.page(View.DEAD_LETTERED)
    assert letters.rows == [] and [(k, d.offset) for k, d in letters.dead_letters] == [("k", 7)]
    assert index.page(View.ALL).counts == index.page(View.DEAD_LETTERED).counts == {"all": 4, "deboosted": 2, "near": 2, "disagree": 1, "dlq": 1}


def test_a_rescored_video_shows_once_with_its_newest_score_and_keeps_its_history() -> None:
    index = ReviewIndex()
    index.add_score(score("a", 0.9, model_version="v1"))
    index.add_score(score("b", 0.1))
    index.add_score(score("a", 0.2, model_version="v2"))
    assert [(r.score.video_id, r.score.model_version) for r in index.page(View.ALL).rows] == [("a", "v2"), ("b", "matchlite-test+enc.e1")]
    assert [h.model_version for h in index.video("a").history] == ["v1", "v2"]


def test_pages_are_clamped_and_the_index_is_bounded() -> None:
    index = ReviewIndex(max_scores=120)
    for i in range(130):
        index.add_score(score(f"v{i:03d}", 0.1))
    first, last = index.page(View.ALL, 1, per_page=50), index.page(View.ALL, 99, per_page=50)
    assert (first.total, first.pages, first.rows[0].score.video_id) == (120, 3, "v129")
    assert (last.number, len(last.rows), last.rows[-1].score.video_id) == (3, 20, "v010")  # v000-v009 forgotten
    assert index.video("v005") is None and index.page(View.ALL, -3).number == 1


def test_one_videos_page_gathers_both_events_the_shadow_and_its_verdicts() -> None:
    index = ReviewIndex()
    index.add_event(event("orig", title="the original"))
    index.add_event(event("copy", title="the copy"))
    index.add_score(score("copy", 0.9))
    index.add_shadow(shadow(score("copy", 0.9), teacher=0.8, agree=True))
    index.add_verdict(verdict("copy", "orig"))
    index.add_verdict(verdict("copy", "someone-else", "confirm"))
    detail = index.video("copy")
    assert (detail.event.title, detail.candidate_event.title, detail.shadow.teacher_score) == ("the copy", "the original", 0.8)
    assert [v.verdict for v in detail.verdicts] == ["overturn", "confirm"]
    [row] = index.page(View.ALL).rows
    assert row.verdict.verdict == "overturn"  # the verdict about this score's candidate, not another's
    assert index.video("nobody") is None


def test_verdicts_become_labels_by_the_decision_they_judge_the_latest_winning() -> None:
    from rci.review.export import labelled_pairs

    def v(video: str, candidate: str | None, what: str, deboost: bool) -> ReviewVerdict:
        return verdict(video, candidate, what).model_copy(update={"deboost": deboost})

    rows = labelled_pairs([v("a", "o", "confirm", True), v("b", "o", "overturn", True), v("c", "o", "overturn", False),
                           v("d", "o", "confirm", False), v("e", None, "confirm", True),
                           v("a", "o", "overturn", True)])  # fmt: skip
    assert {(r["query_id"], r["label"]) for r in rows} == {("a", 0), ("b", 0), ("c", 1), ("d", 0)}
