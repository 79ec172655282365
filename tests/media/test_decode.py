from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest
from tests.media.mediafactory import (
    GREY_STEP,
    remux_as_streamed_mkv,
    write_codec_clip,
    write_hls_playlist,
    write_subtitle_only_mkv,
    write_timed_frames,
    write_trackless_mp4,
)

import rci.media.decode
from rci.media.decode import decode_media, square_rgb, whole_size
from rci.media.decoded import FRAME_SIZE, SAMPLE_RATE
from rci.media.errors import MediaRejected
from rci.media.logmel import log_mel_spectrogram
from rci.media.policy import MediaPolicy
from rci.media.synth import synthetic_picture, write_test_video
from rci.core.errors import RejectCode

POLICY = MediaPolicy(allowed_prefixes=(), max_frames=8)


def rejection(source: Path | bytes, policy: MediaPolicy = POLICY) -> RejectCode:
    with pytest.raises(MediaRejected) as caught:
        decode_media(source, policy)
    return caught.value.code


# --- frames ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("duration_s", "expected"), [(0.4, 1), (2.5, 3), (3.0, 3), (4.2, 5)])
def test_frame_count_is_ceil_of_duration_at_1fps(tmp_path: Path, duration_s: float, expected: int) -> None:
    clip = write_test_video(tmp_path / "c.mp4", duration_s=duration_s, with_audio=False)
    decoded = decode_media(clip, POLICY)
    assert decoded.frames.shape == (POLICY.max_frames, FRAME_SIZE, FRAME_SIZE, 3)
    assert decoded.frames.dtype == np.uint8
    assert decoded.frame_mask.tolist() == [True] * expected + [False] * (POLICY.max_frames - expected)
    assert decoded.duration_s == pytest.approx(duration_s, abs=0.05)


def test_mask_marks_real_frames_and_padding_is_zero(clip: Path) -> None:
    decoded = decode_media(clip, POLICY)
    real, padding = decoded.frames[decoded.frame_mask], decoded.frames[~decoded.frame_mask]
    assert len(real) == 3 and len(padding) == POLICY.max_frames - 3
    assert all(frame.max() > 0 for frame in real)
    assert not padding.any()
    assert decoded.has_video


def test_frames_stop_at_max_frames(tmp_path: Path) -> None:
    clip = write_test_video(tmp_path / "long.mp4", duration_s=6.0, with_audio=False)
    decoded = decode_media(clip, MediaPolicy(allowed_prefixes=(), max_frames=4))
    assert decoded.frame_mask.tolist() == [True] * 4
    assert decoded.duration_s == pytest.approx(6.0, abs=0.05)  # the whole file is still timed


def test_each_frame_shows_its_own_second(clip: Path) -> None:
    # The synthetic clip shows a different picture every second; frame k must match second k's.
    decoded = decode_media(clip, POLICY)
    expected = [square_rgb(synthetic_picture(s, 64, 48, 0)) for s in range(3)]
    for k in range(3):
        errors = [np.abs(decoded.frames[k].astype(int) - e.astype(int)).mean() for e in expected]
        assert int(np.argmin(errors)) == k, errors


def test_nearest_frame_to_each_second_ties_to_the_earlier(tmp_path: Path) -> None:
    # Frames at 0, 0.5, 1.5, 2.2, 2.9 s: second 1 is 0.5 s from both 0.5 and 1.5 (tie -> 0.5 s frame),
    # second 2 is nearest to 2.2, second 3 lies past the last frame's end (2.9 s + its duration).
    clip = write_timed_frames(tmp_path / "vfr.mp4", [0.0, 0.5, 1.5, 2.2, 2.9])
    decoded = decode_media(clip, POLICY)
    shown = [round(float(decoded.frames[k].mean()) / GREY_STEP) for k in range(3)]
    assert shown == [0, 1, 3]
    assert decoded.frame_mask.sum() == 3


def test_centre_square_crop_keeps_the_middle(tmp_path: Path) -> None:
    # Left third black, middle white, right third black: the centre crop of a 3:1 frame is all white.
    picture = np.zeros((64, 192, 3), np.uint8)
    picture[:, 64:128] = 255
    out = square_rgb(picture)
    assert out.shape == (FRAME_SIZE, FRAME_SIZE, 3)
    assert out.min() >= 250


def test_whole_frames_keep_the_aspect_and_every_side_of_the_picture(tmp_path: Path) -> None:
    # 64x48 (4:3) clip: the whole frame is 224 x 168, and shows the same second's picture as the square.
    clip = write_test_video(tmp_path / "wide.mp4", duration_s=3.0, width=64, height=48, with_audio=False)
    decoded = decode_media(clip, POLICY)
    assert decoded.wholes is not None
    assert decoded.wholes.shape == (POLICY.max_frames, 168, 224, 3)
    real = decoded.frame_mask.sum()
    assert decoded.wholes[real:].max() == 0  # padding rows stay zero, as the squares' do
    expected = [av.VideoFrame.from_ndarray(synthetic_picture(s, 64, 48, 0), format="rgb24")
                .reformat(width=224, height=168, format="rgb24").to_ndarray() for s in range(3)]
    for k in range(3):
        errors = [np.abs(decoded.wholes[k].astype(int) - e.astype(int)).mean() for e in expected]
        assert int(np.argmin(errors)) == k, errors


@pytest.mark.parametrize(("width", "height", "expected"), [
    (1280, 720, (224, 128)), (720, 1280, (128, 224)), (500, 500, (224, 224)), (4000, 10, (224, 8))])
def test_whole_size_keeps_the_aspect_on_a_multiple_of_eight(width: int, height: int, expected: tuple[int, int]) -> None:
    assert whole_size(width, height) == expected


# --- audio ----------------------------------------------------------------------------------


def test_audio_is_16khz_mono_with_the_tone_and_its_log_mel(clip: Path) -> None:
    decoded = decode_media(clip, POLICY)
    assert decoded.audio is not None and decoded.audio.dtype == np.float32
    assert len(decoded.audio) == 3 * SAMPLE_RATE
    assert np.abs(decoded.audio).max() <= 1.0
    spectrum = np.abs(np.fft.rfft(decoded.audio))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(decoded.audio)
    assert peak_hz == pytest.approx(440, abs=2)
    assert decoded.log_mel.shape == (80, 3000) and decoded.log_mel.dtype == np.float32
    np.testing.assert_array_equal(decoded.log_mel, log_mel_spectrogram(decoded.audio))


def test_audio_is_cut_to_the_first_30_seconds(tmp_path: Path) -> None:
    clip = write_test_video(tmp_path / "a.mp4", duration_s=31.0, with_video=False)
    decoded = decode_media(clip, POLICY)
    assert len(decoded.audio) == 30 * SAMPLE_RATE
    assert decoded.duration_s == pytest.approx(31.0, abs=0.05)


def test_no_audio_track_gives_audio_none(tmp_path: Path) -> None:
    decoded = decode_media(write_test_video(tmp_path / "v.mp4", duration_s=2.0, with_audio=False), POLICY)
    assert decoded.audio is None and decoded.log_mel is None and not decoded.has_audio
    assert decoded.frame_mask.sum() == 2


def test_no_video_track_gives_masked_empty_frames(tmp_path: Path) -> None:
    decoded = decode_media(write_test_video(tmp_path / "a.mp4", duration_s=2.0, with_video=False), POLICY)
    assert not decoded.frame_mask.any() and not decoded.frames.any() and not decoded.has_video
    assert decoded.frames.shape == (POLICY.max_frames, FRAME_SIZE, FRAME_SIZE, 3)
    assert decoded.audio is not None and len(decoded.audio) == 2 * SAMPLE_RATE


# --- determinism ------------------------------------------------------------------------------


def test_same_file_decodes_identically_twice_from_path_and_bytes(clip: Path) -> None:
    first, second = decode_media(clip, POLICY), decode_media(clip, POLICY)
    from_bytes = decode_media(clip.read_bytes(), POLICY)
    for other in (second, from_bytes):
        np.testing.assert_array_equal(first.frames, other.frames)
        np.testing.assert_array_equal(first.frame_mask, other.frame_mask)
        np.testing.assert_array_equal(first.audio, other.audio)
        np.testing.assert_array_equal(first.log_mel, other.log_mel)
        assert first.duration_s == other.duration_s


# --- bad media: each gets its documented code -----------------------------------------------


def test_zero_bytes_is_empty(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert rejection(empty) == RejectCode.MEDIA_EMPTY
    assert rejection(b"") == RejectCode.MEDIA_EMPTY


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    assert rejection(tmp_path / "gone.mp4") == RejectCode.MEDIA_NOT_FOUND


@pytest.mark.parametrize("faststart", [False, True], ids=["index-at-end", "index-at-front"])
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_truncated_mp4_is_undecodable(tmp_path: Path, faststart: bool, keep: float) -> None:
    whole = write_test_video(tmp_path / "w.mp4", duration_s=3.0, faststart=faststart).read_bytes()
    assert rejection(whole[: int(len(whole) * keep)]) == RejectCode.MEDIA_UNDECODABLE


def test_random_bytes_are_undecodable() -> None:
    assert rejection(np.random.default_rng(0).bytes(4096)) == RejectCode.MEDIA_UNDECODABLE


def test_text_file_is_undecodable(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    assert rejection(text) == RejectCode.MEDIA_UNDECODABLE


def test_playlist_cannot_make_ffmpeg_open_other_files(clip: Path, tmp_path: Path) -> None:
    playlist = write_hls_playlist(tmp_path / "list.m3u8", clip)
    assert rejection(playlist) == RejectCode.MEDIA_UNDECODABLE
    assert rejection(playlist.read_bytes()) == RejectCode.MEDIA_UNDECODABLE


def test_file_without_tracks_has_no_streams(tmp_path: Path) -> None:
    assert rejection(write_trackless_mp4(tmp_path / "none.mp4")) == RejectCode.MEDIA_NO_STREAMS


def test_subtitle_only_file_has_no_streams(tmp_path: Path) -> None:
    assert rejection(write_subtitle_only_mkv(tmp_path / "subs.mkv")) == RejectCode.MEDIA_NO_STREAMS


def test_4k_is_refused_from_the_header_before_any_frame_is_decoded(tmp_path: Path, monkeypatch) -> None:
    clip = write_test_video(tmp_path / "4k.mp4", duration_s=0.2, width=3840, height=2160, fps=5, with_audio=False)
    assert decode_media(clip, MediaPolicy((), max_pixels=3840 * 2160)).frame_mask.sum() == 1  # decodable

    def fail(*_: object) -> None:
        raise AssertionError("a frame was decoded before the resolution check")

    monkeypatch.setattr(rci.media.decode._FrameSampler, "add", fail)
    assert rejection(clip, MediaPolicy(allowed_prefixes=())) == RejectCode.MEDIA_RESOLUTION_TOO_HIGH


def test_longer_than_the_limit_is_too_long(clip: Path) -> None:
    assert rejection(clip, MediaPolicy(allowed_prefixes=(), max_duration_s=2.0)) == RejectCode.MEDIA_TOO_LONG
    assert decode_media(clip, MediaPolicy(allowed_prefixes=(), max_duration_s=3.5)).duration_s <= 3.5


def test_length_is_enforced_from_packets_when_the_header_has_none(clip: Path, tmp_path: Path) -> None:
    streamed = remux_as_streamed_mkv(clip, tmp_path / "streamed.mkv")
    with av.open(str(streamed)) as container:
        assert container.duration is None  # so only the packet timestamps can tell
    assert rejection(streamed, MediaPolicy(allowed_prefixes=(), max_duration_s=2.0)) == RejectCode.MEDIA_TOO_LONG
    assert decode_media(streamed, POLICY).frame_mask.sum() == 3


def test_bad_inputs_never_crash_with_anything_but_media_rejected(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    good = write_test_video(tmp_path / "g.mp4", duration_s=1.0, faststart=True).read_bytes()
    for trial in range(20):
        blob = bytearray(good)
        for position in rng.integers(64, len(blob), size=20):  # keep the first box header intact
            blob[position] = rng.integers(0, 256)
        try:
            outcome = decode_media(bytes(blob), POLICY)
        except MediaRejected as rejected:  # any other exception fails the test
            outcome = rejected.code
        assert isinstance(outcome, RejectCode) or outcome.frames.shape[0] == POLICY.max_frames



def test_rejection_survives_a_process_pool(tmp_path: Path) -> None:
    # The worker may decode in a process pool: the rejection must cross the process boundary intact.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    # spawn, not fork: a forked child inherits FFmpeg's swscale thread state mid-use and can hang
    # freeing a frame that the parent's garbage still held (seen: pthread_cond_destroy in sws_freeContext).
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool, pytest.raises(MediaRejected) as caught:
        pool.submit(decode_media, text, POLICY).result()
    assert caught.value.code == RejectCode.MEDIA_UNDECODABLE and "FFmpeg" in caught.value.detail


# --- resource bounds: pixels before decoding, codecs, time, the file decoded -------------------


def test_oversized_pictures_are_not_even_decoded_by_av_opens_probing(tmp_path: Path, monkeypatch) -> None:
    # av.open decodes a few frames to probe the streams (FFmpeg's find_stream_info); FFmpeg's decoders
    # are given max_pixels, so they refuse to allocate the 4K picture rather than decode it.
    clip = write_test_video(tmp_path / "4k.mp4", duration_s=0.2, width=3840, height=2160, fps=5, with_audio=False)
    monkeypatch.setattr(rci.media.decode._FrameSampler, "add", _no_frame_may_be_decoded)
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as logs:
            assert rejection(clip, MediaPolicy((), max_pixels=3840 * 2160 - 1)) == RejectCode.MEDIA_RESOLUTION_TOO_HIGH
    finally:
        av.logging.set_level(level)
    assert any("exceeds specified max pixel count" in message for _, _, message in logs)


@pytest.mark.parametrize(
    ("allowed", "refused"), [(("aac",), "video codec 'h264'"), (("h264",), "audio codec 'aac'"), (("pcm_*",), "h264")]
)
def test_a_codec_outside_the_allow_list_is_undecodable_before_any_frame(
    clip: Path, monkeypatch, allowed: tuple[str, ...], refused: str
) -> None:
    monkeypatch.setattr(rci.media.decode._FrameSampler, "add", _no_frame_may_be_decoded)
    monkeypatch.setattr(rci.media.decode._AudioCollector, "add", _no_frame_may_be_decoded)
    with pytest.raises(MediaRejected) as caught:
        decode_media(clip, MediaPolicy((), allowed_codecs=allowed))
    assert caught.value.code == RejectCode.MEDIA_UNDECODABLE
    assert refused in caught.value.detail and "RCI_MEDIA_ALLOWED_CODECS" in caught.value.detail


@pytest.mark.parametrize(
    ("container_format", "video", "audio"),
    [
        ("mp4", "libx265", None),  # hevc
        ("webm", "libvpx", "libopus"),  # vp8 + opus
        ("webm", "libvpx-vp9", "vorbis"),
        ("mp4", "libsvtav1", None),  # av1
        ("avi", "mpeg4", "libmp3lame"),  # mpeg4 + mp3
        ("matroska", "libx264", "flac"),
        ("wav", None, "pcm_s16le"),
    ],
)
def test_the_default_codecs_admit_what_uploads_use(tmp_path: Path, container_format: str, video, audio) -> None:
    # h264 + aac are every other test's clips (rci.media.synth, the corpus generator, the hostile corpus).
    clip = write_codec_clip(tmp_path / f"clip.{container_format}", container_format, video, audio)
    decoded = decode_media(clip, POLICY)
    assert decoded.frame_mask.any() == (video is not None) and (decoded.audio is not None) == (audio is not None)


def test_a_decode_past_its_deadline_is_undecodable_and_leaves_the_thread_clean(clip: Path) -> None:
    with pytest.raises(MediaRejected) as caught:
        decode_media(clip, MediaPolicy((), decode_timeout_s=1e-9))
    assert caught.value.code == RejectCode.MEDIA_UNDECODABLE
    assert "RCI_MEDIA_DECODE_TIMEOUT_S" in caught.value.detail
    assert decode_media(clip, POLICY).frame_mask.sum() == 3  # nothing of it lingers on this thread


def test_reads_past_the_deadline_end_the_file_so_ffmpeg_stops(clip: Path, monkeypatch) -> None:
    # The deadline passes while av.open is reading: FFmpeg sees end-of-file, not a read that hangs.
    reads = []
    original = rci.media.decode._DeadlineReader.read

    def read(self, size: int = -1) -> bytes:
        data = original(self, size)
        reads.append(len(data))
        self._deadline._end = 0.0  # the deadline passes after the first read
        return data

    monkeypatch.setattr(rci.media.decode._DeadlineReader, "read", read)
    with pytest.raises(MediaRejected) as caught:
        decode_media(clip, POLICY)
    assert "RCI_MEDIA_DECODE_TIMEOUT_S" in caught.value.detail
    assert reads[0] > 0 and set(reads[1:]) <= {0}


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with ThreadPoolExecutor(max_workers=1) as pool:  # a hang fails the test after 10 s instead of hanging it
        with pytest.raises(MediaRejected) as caught:
            pool.submit(decode_media, fifo, POLICY).result(timeout=10)
    assert caught.value.code == RejectCode.MEDIA_NOT_ALLOWED and "not a regular file" in caught.value.detail


def test_a_symlink_is_refused_by_the_open_itself(clip: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)  # fetch_media resolves links it allows; a link here was swapped in after it
    with pytest.raises(MediaRejected) as caught:
        decode_media(link, POLICY)
    assert caught.value.code == RejectCode.MEDIA_NOT_ALLOWED and "symbolic link" in caught.value.detail


def test_a_file_grown_over_the_limit_after_its_check_is_refused(clip: Path) -> None:
    assert rejection(clip, MediaPolicy((), max_bytes=clip.stat().st_size - 1)) == RejectCode.MEDIA_TOO_LARGE
    assert rejection(clip.read_bytes(), MediaPolicy((), max_bytes=100)) == RejectCode.MEDIA_TOO_LARGE


def _no_frame_may_be_decoded(*_: object) -> None:
    raise AssertionError("a frame was decoded before the check")


def test_skipping_nonreference_frames_decodes_fewer_and_keeps_each_second_close(tmp_path: Path, monkeypatch) -> None:
    """RCI_MEDIA_SKIP_NONREF_FRAMES (on by default): H.264 with B-frames (libx264's defaults) decodes about half its frames,
    and every second is still sampled, from a frame at most two frames from the one nearest the second."""
    from dataclasses import replace

    from tests.media.mediafactory import ffmpeg_cli

    clip = tmp_path / "moving.mp4"
    subprocess.run([ffmpeg_cli(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30:duration=6",
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(clip)], check=True)  # fmt: skip
    decoded_frames: list[int] = []
    add = rci.media.decode._FrameSampler.add
    monkeypatch.setattr(rci.media.decode._FrameSampler, "add",
                        lambda self, frame: (decoded_frames.append(1), add(self, frame))[1])  # fmt: skip

    every = decode_media(clip, replace(POLICY, skip_nonref_frames=False))
    all_count = len(decoded_frames)
    decoded_frames.clear()
    fewer = decode_media(clip, POLICY)  # the default skips them

    assert len(decoded_frames) < 0.7 * all_count, (len(decoded_frames), all_count)
    assert (fewer.frame_mask == every.frame_mask).all() and fewer.frame_mask.sum() == 6
    def apart(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.abs(x.astype(int) - y.astype(int)).mean())

    for second in range(6):  # far nearer its own second's frame than the neighbouring seconds' (testsrc2 moves)
        own = apart(fewer.frames[second], every.frames[second])
        neighbours = [apart(fewer.frames[second], every.frames[k]) for k in (second - 1, second + 1) if 0 <= k < 6]
        assert own < 0.5 * min(neighbours), (second, own, neighbours)
