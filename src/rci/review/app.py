"""`rci review`: a small server-rendered web app for moderators (aiohttp + Jinja2, nothing from a CDN).

    GET  /                               recent scores: ?view=all|deboosted|near|disagree|dlq&page=N
    GET  /videos/{video_id}              one score and its evidence, the teacher's score, verdicts
    GET  /videos/{video_id}/visual.png   the frame-by-frame visual similarity to its candidate, as a heat map
    GET  /videos/{video_id}/visual.json  the same matrix as numbers (rows: this video's seconds)
    GET  /videos/{video_id}/audio.png    the second-by-second audio fingerprint agreement (and audio.json)
    GET  /videos/{video_id}/frames/{side}/{second}.jpg   a frame of the video (side `video`) or of its
                                         candidate (`candidate`), cut from the sheet in the feature store
    POST /videos/{video_id}/verdict      confirm or overturn (form: verdict, reason, reviewer, token)
    GET  /healthz                        200 once the reader runs

Read-only unless RCI_REVIEW_TOKEN is set; a verdict must carry it (form field `token` or
`Authorization: Bearer`). Every value shown is escaped by Jinja2's autoescape; the pages forbid scripts
and anything not from this server (Content-Security-Policy). Verdicts are written to `rci.reviews`.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import numpy as np
from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import ValidationError

from rci.core import rfc3339
from rci.core.errors import TransientError
from rci.core.settings import Settings
from rci.inference.features import VideoFeatures
from rci.media.thumbnails import FrameSheet
from rci.review.index import ReviewIndex, View
from rci.review.maps import MAP_TITLES, SIMILARITY_MAPS, aligned_seconds, heatmap_png
from rci.review.recent import Recent
from rci.streams.components import encoder_version_of
from rci.streams.contracts import VIDEO_ID_PATTERN, ReviewVerdict, ScoreRecord

CSP = "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'"
PER_PAGE = 50
VerdictSink = Callable[[ReviewVerdict], Awaitable[None]]
FeatureSource = Callable[[str, str], Awaitable[VideoFeatures | None]]  # (video_id, encoder version) -> features
FrameSource = Callable[[str, str], Awaitable[bytes | None]]  # (video_id, encoder version) -> contact sheet JPEG


@dataclass(frozen=True)
class Timeline:
    """A matched segment as percentages of each video's bar: [(left %, width %)] for the query and the candidate."""

    query: list[tuple[float, float]]
    candidate: list[tuple[float, float]]
    query_s: float
    candidate_s: float


def timeline(score: ScoreRecord, query_s: float | None, candidate_s: float | None) -> Timeline:
    segments = score.evidence.matched_segments
    q_len = query_s or max((s[1] for s in segments), default=1.0) or 1.0
    c_len = candidate_s or max((s[3] for s in segments), default=1.0) or 1.0

    def bars(pairs: list[tuple[float, float]], length: float) -> list[tuple[float, float]]:
        return [(round(100 * min(a, length) / length, 2), round(100 * max(0.0, min(b, length) - a) / length, 2))
                for a, b in pairs]  # fmt: skip

    return Timeline(bars([(s[0], s[1]) for s in segments], q_len), bars([(s[2], s[3]) for s in segments], c_len), q_len, c_len)


def make_app(
    settings: Settings, index: ReviewIndex, publish_verdict: VerdictSink, ready: Callable[[], bool],
    features: FeatureSource, frames: FrameSource,
) -> web.Application:  # fmt: skip
    templates = Environment(loader=PackageLoader("rci.review"), autoescape=select_autoescape(default=True))
    # one load per record and sheet for all of a page's concurrent image requests (rci.review.recent)
    recent_features = Recent(lambda key: features(*key))
    recent_sheets = Recent(lambda key: _open_sheet(frames, *key))
    token = settings.review_token.get_secret_value() if settings.review_token else None

    def render(name: str, status: int = 200, **context: object) -> web.Response:
        html = templates.get_template(name).render(read_only=token is None, **context)
        return web.Response(text=html, status=status, content_type="text/html")

    async def scores(request: web.Request) -> web.Response:
        try:
            view = View(request.query.get("view", View.ALL.value))
            number = int(request.query.get("page", "1"))
        except ValueError:
            raise web.HTTPBadRequest(text="view must be one of all, deboosted, near, disagree, dlq; page a number") from None
        page = index.page(view, number, PER_PAGE)

        def link(**changes: object) -> str:
            return "/?" + urlencode({"view": page.view.value, "page": page.number} | changes)

        return render("list.html", page=page, counts=page.counts, views=list(View), link=link)

    def _video_id(request: web.Request) -> str:
        video_id = request.match_info["video_id"]
        if not re.fullmatch(VIDEO_ID_PATTERN, video_id):
            raise web.HTTPNotFound(text="no such video")
        return video_id

    async def video(request: web.Request) -> web.Response:
        detail = index.video(_video_id(request))
        if detail is None:
            raise web.HTTPNotFound(text="no score for this video (yet)")
        bars = timeline(detail.score, detail.event.duration_s if detail.event else None,
                        detail.candidate_event.duration_s if detail.candidate_event else None)  # fmt: skip
        pairs = aligned_seconds(detail.score.evidence.matched_segments) if detail.score.candidate_id else []
        return render("video.html", d=detail, bars=bars, pairs=pairs, titles=MAP_TITLES, message=request.query.get("message"))

    def _scored_pair(request: web.Request) -> tuple[str, str, str]:
        """(video_id, candidate_id, encoder version) of a score the page knows, or 404."""
        detail = index.video(_video_id(request))
        encoders = encoder_version_of(detail.score.model_version) if detail else None
        if detail is None or detail.score.candidate_id is None or encoders is None:
            raise web.HTTPNotFound(text="no candidate to compare with")
        return detail.score.video_id, detail.score.candidate_id, encoders

    async def _matrix(request: web.Request) -> tuple[str, str, np.ndarray]:
        """Only from the feature store, by the ids of a score the page knows: never a path from the request."""
        similarity = SIMILARITY_MAPS.get(request.match_info["modality"])
        if similarity is None:
            raise web.HTTPNotFound(text="maps: visual, audio")
        video_id, candidate_id, encoders = _scored_pair(request)
        query, candidate = await asyncio.gather(recent_features.get((video_id, encoders)),
                                                recent_features.get((candidate_id, encoders)))  # fmt: skip
        if query is None or candidate is None:
            raise web.HTTPNotFound(text="features no longer in the feature store")
        return query.video_id, candidate.video_id, await asyncio.to_thread(similarity, query, candidate)

    async def similarity_map(request: web.Request) -> web.Response:
        png = await asyncio.to_thread(heatmap_png, *await _matrix(request))
        return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "max-age=3600"})

    async def similarity_numbers(request: web.Request) -> web.Response:
        query_id, candidate_id, matrix = await _matrix(request)
        return web.json_response({"query_id": query_id, "candidate_id": candidate_id,
                                  "similarity": np.round(matrix, 4).tolist()})  # fmt: skip

    async def frame(request: web.Request) -> web.Response:
        """One second's frame of the scored video or of its candidate, from the sheet the worker stored."""
        video_id, candidate_id, encoders = _scored_pair(request)
        side, second = request.match_info["side"], int(request.match_info["second"])
        if side not in ("video", "candidate"):
            raise web.HTTPNotFound(text="frames of: video, candidate")
        sheet = await recent_sheets.get((video_id if side == "video" else candidate_id, encoders))
        jpeg = await asyncio.to_thread(sheet.frame, second) if sheet else None
        if jpeg is None:
            raise web.HTTPNotFound(text="no frame of that second in the feature store")
        return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    async def verdict(request: web.Request) -> web.Response:
        video_id = _video_id(request)
        form = await request.post()
        given = str(form.get("token", "")) or request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token is None:
            raise web.HTTPForbidden(text="read-only: this review page has no RCI_REVIEW_TOKEN")
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise web.HTTPForbidden(text="a verdict needs the review token")
        detail = index.video(video_id)
        if detail is None:
            raise web.HTTPNotFound(text="no score for this video (yet)")
        try:
            record = ReviewVerdict(
                video_id=video_id, candidate_id=detail.score.candidate_id, verdict=str(form.get("verdict", "")),
                reason=str(form.get("reason", "")).strip(), reviewer=str(form.get("reviewer", "")).strip(),
                score=detail.score.score, deboost=detail.score.deboost, model_version=detail.score.model_version,
                reviewed_at=rfc3339.now(),
            )  # fmt: skip
        except ValidationError as exc:
            fields = ", ".join(str(e["loc"][0]) for e in exc.errors())
            raise web.HTTPBadRequest(text=f"verdict refused: check {fields}") from None
        try:
            await publish_verdict(record)
        except TransientError as exc:
            raise web.HTTPServiceUnavailable(text=f"verdict not recorded, try again: {exc}") from None
        index.add_verdict(record)  # shown at once; the reader will see it on rci.reviews too
        raise web.HTTPSeeOther(f"/videos/{video_id}?" + urlencode({"message": f"verdict '{record.verdict}' recorded"}))

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n" if ready() else "starting\n", status=200 if ready() else 503)

    @web.middleware
    async def security_headers(request: web.Request, handler: Callable) -> web.StreamResponse:
        response = await handler(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    app = web.Application(middlewares=[security_headers], client_max_size=64 * 1024)
    app.add_routes([
        web.get("/", scores),
        web.get("/videos/{video_id}", video),
        web.get("/videos/{video_id}/{modality}.png", similarity_map),
        web.get("/videos/{video_id}/{modality}.json", similarity_numbers),
        web.get(r"/videos/{video_id}/frames/{side}/{second:\d{1,4}}.jpg", frame),
        web.post("/videos/{video_id}/verdict", verdict),
        web.get("/healthz", healthz),
    ])  # fmt: skip
    return app


async def _open_sheet(frames: FrameSource, video_id: str, encoder_version: str) -> FrameSheet | None:
    sheet = await frames(video_id, encoder_version)
    return await asyncio.to_thread(FrameSheet, sheet) if sheet else None


def kafka_verdict_sink(settings: Settings) -> VerdictSink:
    """Verdicts to `rci.reviews`, keyed by video_id; returns once the broker acknowledged the record."""
    from rci.streams.kafka import make_producer

    producer = make_producer(settings)

    def send(record: ReviewVerdict) -> None:
        failures: list[str] = []
        producer.produce(settings.topic_reviews, key=record.video_id.encode(), value=record.to_json_bytes(),
                         on_delivery=lambda err, _msg: err and failures.append(str(err)))  # fmt: skip
        if producer.flush(15) or failures:
            raise TransientError(f"verdict not acknowledged by the broker: {failures or 'timed out'}")

    async def publish(record: ReviewVerdict) -> None:
        await asyncio.to_thread(send, record)

    return publish
