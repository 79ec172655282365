"""Plan and render a labelled RCI corpus: sources, their reproductions, and the negatives around them.

Two steps, kept apart so the labels can be checked without rendering anything:

* `plan_corpus(config, photos)` is pure: from the seed it decides every video (a `VideoSpec`:
  recipes, edits, title, creator, publish time, split) and every pair (`PairSpec`).
* `make_corpus(...)` renders the plan with a small process pool (derived videos wait for the file
  they edit), then writes the manifest (see `manifest.py`).

Sources come in three kinds, after the paper's labelling reasons (section 4.3.1, Figure 4):

* scene: the picture is the content. Edited copies are reproductions whatever happens to the
  sound or title; around each one sit hard negatives (its music over other pictures, the same
  style with other content, its title over other content).
* voice-over: a stock template picture under speech. Only the speech is content: the same
  template re-voiced is not a reproduction, a re-upload with the same voice-over is.
* caption: a stock template picture and music bed under a burned-in caption. Only the caption is
  content: the same template with another caption is not a reproduction.

Splits are by source: every video made for a source, and every pair, sits in that source's split,
and photo pictures are never shared between splits.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from rci.core import rfc3339
from rci.core.logs import get_logger
from rci.streams.contracts import PublishedEvent
from rci.training.corpus import text
from rci.training.corpus.audio import AudioRecipe, random_voice
from rci.training.corpus.errors import CorpusError
from rci.training.corpus.ffmpeg import ffmpeg_version, require_tools
from rci.training.corpus.manifest import SPLITS, CorpusManifest, PairRecord, Subset, VideoRecord, policy_label
from rci.training.corpus.render import RenderConfig, RenderedVideo, render_video
from rci.training.corpus.sources import (
    CALM_FAMILIES,
    DEFAULT_PHOTO_ROOTS,
    PROCEDURAL_FAMILIES,
    Photo,
    VisualRecipe,
    check_photo_allowed,
    discover_photos,
)
from rci.training.corpus.specs import Derived, Fresh, VideoSpec
from rci.training.corpus.transforms import Mute, NewAudio, content_matches, sample_copy_edits, sample_light_edit

log = get_logger(__name__)

KINDS = ("scene", "voiceover", "caption")
_KIND_CYCLE = ("scene", "voiceover", "caption", "scene", "scene")  # every kind appears from 3 sources on
EPOCH = datetime(2026, 1, 5, tzinfo=UTC)


@dataclass(frozen=True)
class CorpusConfig:
    """Everything that decides the corpus's content. Saved in corpus.json."""

    n_sources: int = 12
    seed: int = 0
    reproductions_per_source: int = 2  # visual copies per scene source
    hard_negatives: bool = True  # per scene source: same audio / same style / same title
    unrelated_per_source: int = 1  # easy negatives against another source of the same split
    min_duration_s: float = 4.0
    max_duration_s: float = 12.0
    photo_share: float = 0.35  # chance that a picture is a Ken-Burns photo rather than procedural
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    render: RenderConfig = field(default_factory=RenderConfig)

    def __post_init__(self) -> None:
        if self.n_sources < 1:
            raise CorpusError("n_sources must be at least 1")
        if not 1.0 <= self.min_duration_s <= self.max_duration_s:
            raise CorpusError("durations must satisfy 1 <= min_duration_s <= max_duration_s")
        if self.reproductions_per_source < 0 or self.unrelated_per_source < 0:
            raise CorpusError("per-source counts must be non-negative")
        if abs(sum(self.split_fractions) - 1.0) > 1e-6 or min(self.split_fractions) < 0:
            raise CorpusError("split_fractions must be non-negative and sum to 1")


@dataclass(frozen=True)
class PairSpec:
    query_id: str
    candidate_id: str
    subset: Subset
    relation: tuple[str, ...] = ()  # content the query made apart from the candidate: new_visuals, new_audio, ...


@dataclass(frozen=True)
class CorpusPlan:
    videos: tuple[VideoSpec, ...]
    pairs: tuple[PairSpec, ...]

    def video(self, video_id: str) -> VideoSpec:
        return next(v for v in self.videos if v.video_id == video_id)


def _stable_int(key: object) -> int:
    return int.from_bytes(hashlib.sha256(str(key).encode()).digest()[:8], "little")


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31))


def assign_splits(kinds: list[str], fractions: tuple[float, float, float], rng: np.random.Generator) -> list[str]:
    """A split per source: quotas from the fractions (val and test get one each from 3 sources on),
    spread so that every split gets a mix of kinds."""
    n = len(kinds)
    quota = [round(n * f) for f in fractions]
    if n >= 3:
        quota[1], quota[2] = max(1, quota[1]), max(1, quota[2])
    quota[0] = n - quota[1] - quota[2]
    if quota[0] < 0:  # rounding on tiny corpora: shrink val first
        quota[1] += quota[0]
        quota[0] = 0
    # Interleave the kinds (round-robin over shuffled groups), then deal split labels evenly spaced.
    groups = [[i for i in rng.permutation(n).tolist() if kinds[i] == kind] for kind in KINDS]
    order = [g[j] for j in range(max(map(len, groups), default=0)) for g in groups if j < len(g)]
    slots = sorted(((j + 0.5) / q, s) for s, q in enumerate(quota) for j in range(q))
    splits = [""] * n
    for index, (_, s) in zip(order, slots, strict=True):
        splits[index] = SPLITS[s]
    return splits


class _Planner:
    """Decides every video and pair of one corpus from its seed."""

    def __init__(self, config: CorpusConfig, photos: list[Photo]) -> None:
        self.config = config
        self.photos = photos
        self.photo_split: dict[str, str] = {}  # photo family -> the split it was first used in
        self.videos: list[VideoSpec] = []
        self.pairs: list[PairSpec] = []

    def rng(self, *keys: object) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, *(_stable_int(k) for k in keys)])

    # ------------------------------------------------------------------------------- pictures
    def _photo(self, rng: np.random.Generator, split: str, *, category: str | None = None,
               exclude: Iterable[str] = (), exclude_category: str | None = None) -> Photo | None:
        excluded = set(exclude)
        usable = [p for p in self.photos
                  if self.photo_split.get(p.family, split) == split and p.family not in excluded
                  and (category is None or p.category == category) and p.category != exclude_category]
        if not usable:
            return None
        unused = [p for p in usable if p.family not in self.photo_split]  # fresh pictures first
        pool = unused or usable
        photo = pool[int(rng.integers(len(pool)))]
        self.photo_split[photo.family] = split
        return photo

    def _picture(self, rng: np.random.Generator, split: str, *, calm: bool, avoid_style: str = "") -> VisualRecipe:
        """A new picture: a photo (photo_share of the time, when one is free) or a procedural family."""
        if rng.random() < self.config.photo_share:
            avoid_category = avoid_style.removeprefix("photo:") if avoid_style.startswith("photo:") else None
            photo = self._photo(rng, split, exclude_category=avoid_category)
            if photo is not None:
                return VisualRecipe("photo", _seed(rng), photo=photo.path, category=photo.category, calm=calm)
        families = [f for f in (CALM_FAMILIES if calm else PROCEDURAL_FAMILIES) if f != avoid_style]
        family = families[int(rng.integers(len(families)))]
        lines = tuple(text.sentence(rng) for _ in range(2)) if family == "scroll_text" else ()
        return VisualRecipe(family, _seed(rng), calm=calm, scroll_text=lines)

    def _same_style(self, rng: np.random.Generator, split: str, like: VisualRecipe) -> VisualRecipe | None:
        """Another picture of the same style (family or photo category) with different content."""
        if like.family != "photo":
            lines = tuple(text.sentence(rng) for _ in range(2)) if like.scroll_text else ()
            return VisualRecipe(like.family, _seed(rng), calm=like.calm, scroll_text=lines)
        used = next(p.family for p in self.photos if p.path == like.photo)
        photo = self._photo(rng, split, category=like.category, exclude=[used])
        if photo is None:
            return None
        return VisualRecipe("photo", _seed(rng), photo=photo.path, category=photo.category, calm=like.calm)

    # -------------------------------------------------------------------------------- sounds
    @staticmethod
    def _music(rng: np.random.Generator) -> AudioRecipe:
        return AudioRecipe("music", _seed(rng))

    @staticmethod
    def _speech(rng: np.random.Generator, seconds: float, bed_seed: int | None = None) -> AudioRecipe:
        return AudioRecipe("speech", _seed(rng), text.sentences_for(rng, seconds), random_voice(rng), bed_seed)

    def _sound_like(self, rng: np.random.Generator, like: AudioRecipe | None, seconds: float) -> AudioRecipe | None:
        """New audio of the same kind (or none, like the original)."""
        if like is None:
            return None
        return self._music(rng) if like.kind == "music" else self._speech(rng, seconds)

    # ------------------------------------------------------------------------------- helpers
    def _duration(self, rng: np.random.Generator) -> float:
        return round(float(rng.uniform(self.config.min_duration_s, self.config.max_duration_s)), 1)

    def _later(self, rng: np.random.Generator, than: datetime) -> datetime:
        return (than + timedelta(hours=float(rng.uniform(1, 72)))).replace(microsecond=0)

    def _add(self, spec: VideoSpec, pair_with: VideoSpec | None = None, subset: Subset | None = None,
             relation: tuple[str, ...] = ()) -> VideoSpec:
        self.videos.append(spec)
        if pair_with is not None and subset is not None:
            self.pairs.append(PairSpec(spec.video_id, pair_with.video_id, subset, relation))
        return spec

    def _made_after(self, base: VideoSpec, rng: np.random.Generator, fields: dict[str, object]) -> dict[str, object]:
        """Metadata of a video someone else posted later: base's title and sticker unless overridden."""
        return {"title": base.title, "sticker_text": base.sticker_text, "creator_id": text.creator_id(rng),
                "published_at": self._later(rng, base.published_at), **fields}

    def _derive(self, base: VideoSpec, video_id: str, role: str, rng: np.random.Generator, edits: list,
                **fields: object) -> VideoSpec:
        """A video made by editing base's file."""
        origin = Derived(base.video_id, base.has_audio, base.duration_s)
        return replace(base, video_id=video_id, role=role, origin=origin, edits=tuple(edits),
                       **self._made_after(base, rng, fields))  # type: ignore[arg-type]

    def _fresh(self, base: VideoSpec, video_id: str, role: str, rng: np.random.Generator, origin: Fresh,
               edits: tuple = (), **fields: object) -> VideoSpec:
        """A video drawn from its own recipes, made for base's source (and split)."""
        return replace(base, video_id=video_id, role=role, origin=origin, edits=edits, style=origin.visual.style,
                       **self._made_after(base, rng, fields))  # type: ignore[arg-type]

    # ------------------------------------------------------------------------------- sources
    def plan(self) -> CorpusPlan:
        n = self.config.n_sources
        kinds = [_KIND_CYCLE[i % len(_KIND_CYCLE)] for i in range(n)]
        splits = assign_splits(kinds, self.config.split_fractions, self.rng("splits"))
        sources = []
        for i, (kind, split) in enumerate(zip(kinds, splits, strict=True)):
            source_id = f"rc{self.config.seed}-{i:03d}"
            rng = self.rng("source", i)
            published = (EPOCH + timedelta(hours=6 * i + float(rng.uniform(0, 3)))).replace(microsecond=0)
            plan_kind = {"scene": self._scene, "voiceover": self._voiceover, "caption": self._caption}[kind]
            sources.append(plan_kind(source_id, split, published, rng))
        self._unrelated(sources)
        return CorpusPlan(tuple(self.videos), tuple(self.pairs))

    def _source(self, source_id: str, split: str, published: datetime, rng: np.random.Generator, origin: Fresh,
                title: str, sticker: str | None) -> VideoSpec:
        spec = VideoSpec(f"{source_id}-src", source_id, "source", split, title, sticker, text.creator_id(rng),
                         published, origin, (), origin.visual.style)
        return self._add(spec)

    def _scene(self, source_id: str, split: str, published: datetime, rng: np.random.Generator) -> VideoSpec:
        seconds = self._duration(rng)
        visual = self._picture(rng, split, calm=False)
        audio_kind = rng.choice(["music", "speech", "none"], p=[0.6, 0.25, 0.15])
        audio = None
        if audio_kind == "music":
            audio = self._music(rng)
        elif audio_kind == "speech":
            audio = self._speech(rng, seconds)
        sticker = text.sticker(rng) if rng.random() < 0.5 else None
        burned = sticker if sticker and rng.random() < 0.7 else None
        src = self._source(source_id, split, published, rng, Fresh(visual, audio, burned, seconds), text.title(rng), sticker)

        for k in range(self.config.reproductions_per_source):
            edits = sample_copy_edits(rng, seconds)
            if audio is not None and rng.random() < 0.15:
                edits.append(NewAudio(self._music(rng)))  # re-scored copy: still a copy of the picture
            elif audio is not None and rng.random() < 0.1:
                edits.append(Mute())
            retitled = rng.random() < 0.3
            copy = self._derive(src, f"{source_id}-copy{k + 1}", "copy", rng, edits,
                                **({"title": text.title(rng)} if retitled else {}))
            self._add(copy, src, Subset.VISUAL_COPY, ("new_title",) if retitled else ())

        if self.config.hard_negatives:
            self._scene_hard_negatives(src, visual, audio, burned, rng)
        return src

    def _scene_hard_negatives(self, src: VideoSpec, visual: VisualRecipe, audio: AudioRecipe | None,
                              burned: str | None, rng: np.random.Generator) -> None:
        sid, split = src.source_id, src.split
        if audio is not None and audio.kind == "music":  # a trending sound under unrelated pictures
            seconds = src.duration_s
            other = self._picture(rng, split, calm=False, avoid_style=visual.style)
            spec = self._fresh(src, f"{sid}-hn-audio", "hn_audio", rng, Fresh(other, audio, None, seconds),
                               title=text.title(rng), sticker_text=None)
            self._add(spec, src, Subset.HARD_NEGATIVE_AUDIO, ("new_visuals", "new_title"))

        look_alike = self._same_style(rng, split, visual)
        if look_alike is not None:  # same generator family or photo category, other content
            seconds = self._duration(rng)
            sticker = text.sticker(rng) if src.sticker_text else None
            origin = Fresh(look_alike, self._sound_like(rng, audio, seconds), sticker if burned else None, seconds)
            spec = self._fresh(src, f"{sid}-hn-style", "hn_style", rng, origin, title=text.title(rng),
                               sticker_text=sticker)
            self._add(spec, src, Subset.HARD_NEGATIVE_STYLE, ("new_visuals", "new_audio", "new_title", "new_sticker"))

        seconds = self._duration(rng)  # the same title (and sticker) over other content
        other = self._picture(rng, split, calm=False, avoid_style=visual.style)
        origin = Fresh(other, self._sound_like(rng, audio, seconds), burned, seconds)
        spec = self._fresh(src, f"{sid}-hn-title", "hn_title", rng, origin)
        self._add(spec, src, Subset.HARD_NEGATIVE_TITLE, ("new_visuals", "new_audio"))

    def _voiceover(self, source_id: str, split: str, published: datetime, rng: np.random.Generator) -> VideoSpec:
        seconds = self._duration(rng)
        template = self._picture(rng, split, calm=True)
        bed = _seed(rng)
        origin = Fresh(template, self._speech(rng, seconds, bed_seed=bed), None, seconds)
        src = self._source(source_id, split, published, rng, origin, text.template_title(rng), None)
        # Both sides get one light edit from the same distribution: only the voice-over tells them apart.
        same = self._derive(src, f"{source_id}-vo-same", "audio_pos", rng, [sample_light_edit(rng)])
        self._add(same, src, Subset.AUDIO_DEPENDENT)
        revoiced = self._derive(src, f"{source_id}-vo-other", "audio_neg", rng,
                                [sample_light_edit(rng), NewAudio(self._speech(rng, seconds, bed_seed=bed))])
        self._add(revoiced, src, Subset.AUDIO_DEPENDENT)
        return src

    def _caption(self, source_id: str, split: str, published: datetime, rng: np.random.Generator) -> VideoSpec:
        seconds = self._duration(rng)
        template = self._picture(rng, split, calm=True)
        bed = self._music(rng)
        caption = text.quote(rng)
        origin = Fresh(template, bed, caption, seconds, burned_style="caption")
        src = self._source(source_id, split, published, rng, origin, text.template_title(rng), caption)
        same = self._derive(src, f"{source_id}-cap-same", "text_pos", rng, [sample_light_edit(rng)])
        self._add(same, src, Subset.TEXT_DEPENDENT)
        other_caption = text.quote(rng)
        while other_caption == caption:
            other_caption = text.quote(rng)
        recaptioned = self._fresh(src, f"{source_id}-cap-other", "text_neg", rng,
                                  replace(origin, burned_text=other_caption), edits=(sample_light_edit(rng),),
                                  sticker_text=other_caption)
        self._add(recaptioned, src, Subset.TEXT_DEPENDENT, ("new_sticker",))
        return src

    def _unrelated(self, sources: list[VideoSpec]) -> None:
        seen: set[frozenset[str]] = set()
        for src in sources:
            rng = self.rng("unrelated", src.source_id)
            others = [o for o in sources if o.split == src.split and o.source_id != src.source_id]
            for index in rng.permutation(len(others))[: self.config.unrelated_per_source]:
                other = others[int(index)]
                key = frozenset((src.video_id, other.video_id))
                if key in seen:
                    continue
                seen.add(key)
                query, candidate = sorted((src, other), key=lambda v: (v.published_at, v.video_id), reverse=True)
                self.pairs.append(PairSpec(query.video_id, candidate.video_id, Subset.UNRELATED,
                                           ("new_visuals", "new_audio", "new_title", "new_sticker")))


def plan_corpus(config: CorpusConfig, photos: list[Photo]) -> CorpusPlan:
    """Every video and pair of the corpus, decided from `config.seed` alone (no I/O)."""
    for photo in photos:
        check_photo_allowed(photo.path)
    return _Planner(config, photos).plan()


# -------------------------------------------------------------------------------------- rendering


def _render_all(plan: CorpusPlan, media_dir: Path, render: RenderConfig, workers: int,
                on_done: Callable[[RenderedVideo], None]) -> dict[str, RenderedVideo]:
    """Render every video; a derived video is submitted once the file it edits exists."""
    dependants: dict[str | None, list[VideoSpec]] = {}
    for spec in plan.videos:
        dependants.setdefault(spec.depends_on, []).append(spec)
    done: dict[str, RenderedVideo] = {}

    def finished(result: RenderedVideo) -> list[VideoSpec]:
        done[result.video_id] = result
        on_done(result)
        return dependants.get(result.video_id, [])

    if workers <= 1:  # in-process: simplest to debug, no pool start-up
        queue = list(dependants.get(None, []))
        while queue:
            queue += finished(render_video(queue.pop(0), str(media_dir), render))
        return done

    # spawn, not fork: the caller may hold threads (Kafka clients, torch) that a fork would copy mid-lock.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        running: set[Future[RenderedVideo]] = {pool.submit(render_video, s, str(media_dir), render)
                                               for s in dependants.get(None, [])}
        try:
            while running:
                complete, running = wait(running, return_when=FIRST_COMPLETED)
                for future in complete:
                    for spec in finished(future.result()):  # a failed render raises here
                        running.add(pool.submit(render_video, spec, str(media_dir), render))
        except BrokenProcessPool as exc:
            raise CorpusError("a render worker died; spawned workers re-import the main module, so a caller "
                              "run from stdin (python -) must use workers=1") from exc
        finally:
            for future in running:
                future.cancel()
    return done


def label_pairs(plan: CorpusPlan) -> list[PairRecord]:
    """Each planned pair with its transforms, auxiliary labels and policy label, in split order."""
    specs = {v.video_id: v for v in plan.videos}
    pairs = []
    for p in plan.pairs:
        query, candidate = specs[p.query_id], specs[p.candidate_id]
        transforms = [edit.to_dict() for edit in query.edits] + [{"op": name} for name in p.relation]
        aux = content_matches(transforms, query.has_audio, candidate.has_audio)
        pairs.append(PairRecord(query_id=p.query_id, candidate_id=p.candidate_id, subset=p.subset, split=query.split,  # type: ignore[arg-type]
                                label=policy_label(p.subset, **aux), transforms=transforms, **aux))  # type: ignore[arg-type]
    return sorted(pairs, key=lambda r: (SPLITS.index(r.split), r.query_id, r.candidate_id))


def build_manifest(plan: CorpusPlan, rendered: dict[str, RenderedVideo], root: Path, info: dict) -> CorpusManifest:
    """Events (in publish order), labelled pairs and per-video records of a rendered plan."""
    events = [
        PublishedEvent(schema_version=1, video_id=v.video_id, media_uri=Path(rendered[v.video_id].path).resolve().as_uri(),
                       title=v.title, sticker_text=v.sticker_text, creator_id=v.creator_id,
                       duration_s=v.duration_s, published_at=rfc3339.format(v.published_at))
        for v in sorted(plan.videos, key=lambda v: (v.published_at, v.video_id))
    ]
    videos = {
        v.video_id: VideoRecord(video_id=v.video_id, source_id=v.source_id, split=v.split, role=v.role,  # type: ignore[arg-type]
                                style=v.style, derived_from=v.depends_on, has_audio=v.has_audio,
                                duration_s=v.duration_s, sha256=rendered[v.video_id].sha256,
                                size_bytes=rendered[v.video_id].size_bytes)
        for v in plan.videos
    }
    return CorpusManifest(root=root, events=events, videos=videos, pairs=label_pairs(plan), info=info)


def cached_corpus(root: Path, n_sources: int, seed: int, *, min_duration_s: float = 4.0,
                  max_duration_s: float = 8.0, progress: bool = True) -> CorpusManifest:
    """The corpus at `root` if it was made with these sources and seed, else a freshly generated one there
    (short clips by default: the demo's sample, the serving models' training and validation corpora)."""
    if (root / "corpus.json").exists():
        manifest = CorpusManifest.load(root)
        config = manifest.info.get("config", {})
        if config.get("n_sources") == n_sources and config.get("seed") == seed:
            return manifest
    return make_corpus(root, n_sources=n_sources, seed=seed, min_duration_s=min_duration_s,
                       max_duration_s=max_duration_s, progress=progress)


def make_corpus(
    out_dir: Path | str,
    n_sources: int = 12,
    seed: int = 0,
    *,
    reproductions_per_source: int = 2,
    hard_negatives: bool = True,
    unrelated_per_source: int = 1,
    min_duration_s: float = 4.0,
    max_duration_s: float = 12.0,
    photo_share: float = 0.35,
    photo_roots: tuple[str, ...] = DEFAULT_PHOTO_ROOTS,
    render: RenderConfig | None = None,
    workers: int = 2,
    progress: bool = True,
) -> CorpusManifest:
    """Generate a corpus under `out_dir` (media/, videos.jsonl, pairs.jsonl, corpus.json) and return its manifest.

    Deterministic for a seed on a given ffmpeg build: same manifest, byte-identical media. Photos
    come from `photo_roots` when installed (see install_photos.sh); without them every picture is
    procedural. Stale .mp4 files from an earlier corpus in the same media/ folder are removed.
    """
    require_tools()
    config = CorpusConfig(n_sources=n_sources, seed=seed, reproductions_per_source=reproductions_per_source,
                          hard_negatives=hard_negatives, unrelated_per_source=unrelated_per_source,
                          min_duration_s=min_duration_s, max_duration_s=max_duration_s, photo_share=photo_share,
                          render=render or RenderConfig())
    root = Path(out_dir).absolute()
    media_dir = root / "media"
    media_dir.mkdir(parents=True, exist_ok=True)
    photos = discover_photos(photo_roots) if photo_share > 0 else []
    if photo_share > 0 and not photos:
        log.warning("corpus.no_photos", roots=list(photo_roots), hint="run src/rci/training/corpus/install_photos.sh")
    plan = plan_corpus(config, photos)
    planned = {f"{v.video_id}.mp4" for v in plan.videos}
    for stale in media_dir.glob("*.mp4"):
        if stale.name not in planned:
            stale.unlink()

    started = time.perf_counter()
    columns = (TextColumn("[bold]corpus[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("videos"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("render", total=len(plan.videos))
        rendered = _render_all(plan, media_dir, config.render, workers, lambda _: bar.advance(task))
    wall_s = time.perf_counter() - started

    info = {"config": asdict(config), "photo_roots": list(photo_roots),
            "photos_used": sorted({v.origin.visual.photo for v in plan.videos
                                   if isinstance(v.origin, Fresh) and v.origin.visual.photo}),
            "tools": {"ffmpeg": ffmpeg_version()}}
    manifest = build_manifest(plan, rendered, root, info)
    manifest.write()
    log.info("corpus.made", root=str(root), wall_s=round(wall_s, 1), workers=workers, **manifest.counts())
    return manifest
