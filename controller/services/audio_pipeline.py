"""Loudness pipeline: measure an upload, normalize it to one target, encode it, verify it.

Every bulletin must come out of a horn at the same loudness, whatever microphone or
phone recorded it, so every upload goes through ffmpeg's ``loudnorm`` (ITU-R BS.1770 /
EBU R128) in two passes: the first pass measures the input (and, in the same decode,
``astats`` looks for flat-topped clipping); the second applies the gain computed from
those measured values and encodes straight to the stored format (Opus, mono, 48 kHz).
Finally an *independent* pass over the stored file with the ``ebur128`` filter says what
the operator will actually get: that number is what ``loudness_lufs`` reports.

All three passes are streaming ffmpeg processes (flat memory for hour-long files) run
without a shell, under one deadline for the whole job (ffmpeg is killed when it passes) and
with ``-t`` capping what is decoded: a container that claims a short length cannot make the
controller decode hours. The same input gives the same bytes (bit-exact flags, no
wall-clock anywhere), so storage stays content-addressed. How many jobs run at once, and at
what CPU priority, is the caller's business (controller/services/audio_lanes.py).
"""

from __future__ import annotations

import json
import logging
import math
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# Mono 48 kHz before anything is measured: the loudness that counts is the loudness of
# the single channel the horn will play.
# ``rematrix_maxval=1`` fixes the downmix coefficients whatever sample format ffmpeg
# negotiates next (without it a float chain sums stereo 3 dB louder than an integer one,
# and the two passes would disagree).
_PREPARE = "aresample=48000:rematrix_maxval=1.0,aformat=sample_fmts=flt:channel_layouts=mono"


@dataclass(frozen=True)
class LoudnessTarget:
    """The documented target (docs/audio.md): −16 LUFS integrated, true peak ≤ −1 dBTP.

    ``tp_headroom_db`` is how much lower than the limit loudnorm aims the peak, so the
    small overshoot the lossy Opus encoder adds still leaves the stored file under it.
    """

    integrated_lufs: float = -16.0
    true_peak_dbtp: float = -1.0
    lra_lu: float = 11.0
    tp_headroom_db: float = 0.5
    # Thresholds for the warnings an operator sees.
    silent_below_lufs: float = -60.0
    too_quiet_below_lufs: float = -36.0  # needs > 20 dB of gain: hiss and hum come up too
    clip_peak_dbfs: float = -0.1
    clip_flat_factor: float = 3.0  # astats: average length of flat runs at the peak, in dB
    clip_min_fraction: float = 1e-4  # share of samples sitting at the peak

    @property
    def loudnorm_tp(self) -> float:
        return self.true_peak_dbtp - self.tp_headroom_db


@dataclass(frozen=True)
class SourceAnalysis:
    """First pass over the upload (mono, 48 kHz). ``None`` loudness = below the gate (silence)."""

    integrated_lufs: float | None
    true_peak_dbtp: float | None
    lra_lu: float | None
    threshold_lufs: float | None
    target_offset_lu: float | None
    peak_dbfs: float | None
    flat_factor: float | None
    peak_count: int
    samples: int


@dataclass(frozen=True)
class Measurement:
    """What the independent ``ebur128`` pass measured on the stored file."""

    integrated_lufs: float | None
    true_peak_dbtp: float | None
    lra_lu: float | None


@dataclass(frozen=True)
class AudioWarning:
    """A message key (controller/i18n/vi/LC_MESSAGES/messages.po) and its parameters."""

    code: str
    params: dict[str, float | str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"code": self.code, "params": dict(self.params)}


@dataclass(frozen=True)
class PipelineResult:
    source: SourceAnalysis
    output: Measurement
    normalization: str  # "linear", "dynamic" or "none" (silence is not amplified)
    gain_db: float | None
    warnings: list[AudioWarning]


class PipelineError(Exception):
    """ffmpeg could not read or write the file (the caller turns it into a 415)."""


class PipelineTimeout(PipelineError):
    """The job ran past its deadline; ffmpeg was killed (the caller turns it into a 422)."""


class DecodedTooLong(PipelineError):
    """The audio decoded past the length allowed, whatever its container claimed."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(f"decodes to more than {limit_s:.0f}s")
        self.limit_s = limit_s


def _run_ffmpeg(args: list[str], timeout: float, *, niceness: int = 0) -> str:
    """One ffmpeg run; ``subprocess.run`` kills it when ``timeout`` passes.

    ``nice`` execs ffmpeg in place (same pid), so the kill reaches ffmpeg itself.
    """
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", *args]
    if niceness > 0:
        cmd = ["nice", "-n", str(niceness), *cmd]
    if timeout <= 0:
        raise PipelineTimeout("no time left for ffmpeg")
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PipelineTimeout(f"ffmpeg timed out after {timeout:.0f}s") from exc
    stderr = proc.stderr.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        raise PipelineError(stderr[-2000:])
    return stderr


def _num(value: str | None) -> float | None:
    """ffmpeg prints -inf/inf/nan for silence; those mean 'no measurement'."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _loudnorm_json(stderr: str) -> dict[str, str]:
    start = stderr.rfind("[Parsed_loudnorm")
    if start < 0:
        raise PipelineError("loudnorm printed no measurement")
    open_at = stderr.find("{", start)
    close_at = stderr.find("}", open_at)
    if open_at < 0 or close_at < 0:
        raise PipelineError("loudnorm printed no measurement")
    return json.loads(stderr[open_at : close_at + 1])  # type: ignore[no-any-return]


def _astats_value(stderr: str, label: str) -> str | None:
    # Overall section only (per-channel output is switched off).
    match = re.search(rf"\] {re.escape(label)}: (\S+)", stderr)
    return match.group(1) if match else None


# Decoded past the limit by this much = too long (one Opus/MP3 frame of slack, and more).
_LIMIT_SLACK_S = 1.0


def _cap(max_duration_s: float | None) -> list[str]:
    """ffmpeg output option: stop decoding just past the allowed length, whatever the file says."""
    return [] if max_duration_s is None else ["-t", f"{max_duration_s + _LIMIT_SLACK_S:.3f}"]


def analyze(
    src: Path,
    target: LoudnessTarget,
    *,
    timeout: float = 600,
    niceness: int = 0,
    max_duration_s: float | None = None,
) -> SourceAnalysis:
    """Pass 1: integrated loudness, true peak and LRA (loudnorm), clipping signs (astats).

    With ``max_duration_s`` the decode stops just past it and a file that got there raises
    ``DecodedTooLong``: the probe read the container's claim, this is what the audio is.
    """
    chain = (
        f"{_PREPARE},aformat=sample_fmts=s16,astats=measure_perchannel=none,"
        f"loudnorm=I={target.integrated_lufs}:TP={target.loudnorm_tp}:LRA={target.lra_lu}"
        ":print_format=json"
    )
    stderr = _run_ffmpeg(
        ["-i", str(src), "-vn", "-sn", "-dn", "-af", chain, *_cap(max_duration_s), "-f", "null", "-"],
        timeout, niceness=niceness,
    )  # fmt: skip
    ln = _loudnorm_json(stderr)
    integrated = _num(ln.get("input_i"))
    if integrated is not None and integrated <= -70.0:
        integrated = None  # at the absolute gate: nothing loud enough to measure
    peak_count = _num(_astats_value(stderr, "Peak count"))
    samples = _num(_astats_value(stderr, "Number of samples"))
    if max_duration_s is not None and (samples or 0) > (max_duration_s + _LIMIT_SLACK_S / 2) * 48000:
        raise DecodedTooLong(max_duration_s)
    return SourceAnalysis(
        integrated_lufs=integrated,
        true_peak_dbtp=_num(ln.get("input_tp")),
        lra_lu=_num(ln.get("input_lra")),
        threshold_lufs=_num(ln.get("input_thresh")),
        target_offset_lu=_num(ln.get("target_offset")),
        peak_dbfs=_num(_astats_value(stderr, "Peak level dB")),
        flat_factor=_num(_astats_value(stderr, "Flat factor")),
        peak_count=int(peak_count or 0),
        samples=int(samples or 0),
    )


# BS.1770 gates in 400 ms blocks: a shorter clip has no integrated loudness at all.
_MIN_MEASURABLE_SAMPLES = int(0.4 * 48000)


def is_silent(a: SourceAnalysis, target: LoudnessTarget) -> bool:
    if a.peak_dbfs is None or a.peak_dbfs < target.silent_below_lufs:
        return True
    if a.integrated_lufs is None:
        return a.samples >= _MIN_MEASURABLE_SAMPLES  # a short beep is not silence
    return a.integrated_lufs < target.silent_below_lufs


def _normalizable(a: SourceAnalysis, target: LoudnessTarget) -> bool:
    return a.integrated_lufs is not None and not is_silent(a, target)


def is_clipped(a: SourceAnalysis, target: LoudnessTarget) -> bool:
    """Flat tops at full scale: the recording was overdriven (or the decode overshot 0 dBFS)."""
    if a.peak_dbfs is None or a.flat_factor is None or a.samples == 0:
        return False
    return (
        a.peak_dbfs >= target.clip_peak_dbfs
        and a.flat_factor >= target.clip_flat_factor
        and a.peak_count / a.samples >= target.clip_min_fraction
    )


def warnings_for(a: SourceAnalysis, target: LoudnessTarget) -> list[AudioWarning]:
    if is_silent(a, target):
        return [AudioWarning("audio.warn.silent")]
    out = []
    if is_clipped(a, target):
        share = 100.0 * a.peak_count / a.samples
        out.append(AudioWarning("audio.warn.clipped", {"percent": f"{share:.2f}".replace(".", ",")}))
    if a.integrated_lufs is not None and a.integrated_lufs < target.too_quiet_below_lufs:
        out.append(
            AudioWarning(
                "audio.warn.too_quiet",
                {
                    "lufs": f"{a.integrated_lufs:.1f}".replace(".", ","),
                    "gain": f"{target.integrated_lufs - a.integrated_lufs:.0f}",
                },
            )
        )
    return out


def _loudnorm_apply(a: SourceAnalysis, target: LoudnessTarget, aim_lufs: float) -> str:
    assert a.integrated_lufs is not None
    tp = a.true_peak_dbtp if a.true_peak_dbtp is not None else -99.0
    lra = a.lra_lu if a.lra_lu is not None else 0.0
    thresh = a.threshold_lufs if a.threshold_lufs is not None else -70.0
    offset = a.target_offset_lu if a.target_offset_lu is not None else 0.0
    return (
        f"loudnorm=I={aim_lufs:.2f}:TP={target.loudnorm_tp}:LRA={target.lra_lu}"
        f":measured_I={a.integrated_lufs:.2f}:measured_TP={tp:.2f}:measured_LRA={lra:.2f}"
        f":measured_thresh={thresh:.2f}:offset={offset:.2f}:linear=true:print_format=json"
    )


def encode(
    src: Path,
    dest: Path,
    a: SourceAnalysis,
    target: LoudnessTarget,
    *,
    aim_lufs: float | None = None,
    bitrate: str = "32k",
    timeout: float = 600,
    niceness: int = 0,
    max_duration_s: float | None = None,
) -> str:
    """Pass 2: apply the measured gain (or nothing, for silence) and encode to Opus.

    Returns the normalization type loudnorm chose: "linear" (one gain for the whole
    file, the usual case for speech) or "dynamic" (when one gain would push the peaks
    over the limit, loudnorm compresses instead).
    """
    # Silence is not amplified, and a clip too short to measure is left as it is.
    silent = not _normalizable(a, target)
    aim = target.integrated_lufs if aim_lufs is None else aim_lufs
    # loudnorm works at 192 kHz in dynamic mode; resample back to the stored rate.
    chain = _PREPARE if silent else f"{_PREPARE},{_loudnorm_apply(a, target, aim)},aresample=48000"
    stderr = _run_ffmpeg(
        [
            "-i", str(src),
            "-vn", "-sn", "-dn", "-map_metadata", "-1",
            "-af", chain,
            "-ac", "1", "-ar", "48000",
            "-c:a", "libopus", "-b:a", bitrate, "-application", "voip",
            "-fflags", "+bitexact", "-flags:a", "+bitexact", *_cap(max_duration_s),
            "-f", "ogg", "-y", str(dest),
        ],
        timeout, niceness=niceness,
    )  # fmt: skip
    if not dest.exists() or dest.stat().st_size == 0:
        raise PipelineError("encoder wrote nothing")
    if silent:
        return "none"
    return str(_loudnorm_json(stderr).get("normalization_type", "linear")).lower()


_EBUR_I = re.compile(r"Integrated loudness:\s*\n\s*I:\s*(\S+) LUFS")
_EBUR_LRA = re.compile(r"Loudness range:\s*\n\s*LRA:\s*(\S+) LU")
_EBUR_PEAK = re.compile(r"True peak:\s*\n\s*Peak:\s*(\S+) dBFS")


def measure(path: Path, *, timeout: float = 600, niceness: int = 0) -> Measurement:
    """Independent measurement with ffmpeg's ebur128 filter (not loudnorm), true peak on."""
    stderr = _run_ffmpeg(["-i", str(path), "-af", "ebur128=peak=true", "-f", "null", "-"], timeout,
                         niceness=niceness)  # fmt: skip
    summary = stderr[stderr.rfind("Summary:") :]
    found = _EBUR_I.search(summary)
    if not found:
        raise PipelineError("ebur128 printed no summary")
    integrated = _num(found.group(1))
    if integrated is not None and integrated <= -70.0:
        integrated = None
    lra = _EBUR_LRA.search(summary)
    peak = _EBUR_PEAK.search(summary)
    return Measurement(
        integrated_lufs=integrated,
        true_peak_dbtp=_num(peak.group(1)) if peak else None,
        lra_lu=_num(lra.group(1)) if lra else None,
    )


def process(
    src: Path,
    dest: Path,
    target: LoudnessTarget | None = None,
    *,
    bitrate: str = "32k",
    timeout: float = 600,
    niceness: int = 0,
    max_duration_s: float | None = None,
) -> PipelineResult:
    """Analyze, normalize + encode, then measure the stored result independently.

    ``timeout`` bounds the whole job (every pass gets what is left of it); ``niceness``
    lowers ffmpeg's CPU priority; ``max_duration_s`` caps the decoded length.

    When the independent measurement misses the target by more than
    ``CORRECTION_LU`` (loudnorm's dynamic mode undershoots on peaky material, and the
    Opus encoder trims treble that K-weighting counts), the file is encoded once more
    from the source with loudnorm aimed off by the error; the closer result is kept.
    Everything is a function of the input bytes, so the output stays bit-exact.
    """
    target = target or LoudnessTarget()
    deadline = time.monotonic() + timeout

    def left() -> float:
        return deadline - time.monotonic()

    cap, nice = max_duration_s, niceness
    source = analyze(src, target, timeout=left(), niceness=nice, max_duration_s=cap)
    kind = encode(src, dest, source, target, bitrate=bitrate, timeout=left(), niceness=nice,
                  max_duration_s=cap)  # fmt: skip
    output = measure(dest, timeout=left(), niceness=nice)
    error = _error(output, target)
    if kind != "none" and error is not None and abs(error) > CORRECTION_LU:
        aim = min(max(target.integrated_lufs - error, -70.0), -5.0)
        retry = dest.with_name(dest.name + ".retry")
        kind2 = encode(src, retry, source, target, aim_lufs=aim, bitrate=bitrate, timeout=left(),
                       niceness=nice, max_duration_s=cap)  # fmt: skip
        output2 = measure(retry, timeout=left(), niceness=nice)
        error2 = _error(output2, target)
        if error2 is not None and abs(error2) < abs(error):
            retry.replace(dest)
            kind, output = kind2, output2
        else:
            retry.unlink(missing_ok=True)
    gain = None
    if kind != "none" and source.integrated_lufs is not None and output.integrated_lufs is not None:
        gain = round(output.integrated_lufs - source.integrated_lufs, 1)
    log.info(
        "loudness %s -> %s LUFS (%s), true peak %s dBTP",
        source.integrated_lufs, output.integrated_lufs, kind, output.true_peak_dbtp,
    )  # fmt: skip
    return PipelineResult(source, output, kind, gain, warnings_for(source, target))


CORRECTION_LU = 0.5


def _error(m: Measurement, target: LoudnessTarget) -> float | None:
    return None if m.integrated_lufs is None else m.integrated_lufs - target.integrated_lufs
