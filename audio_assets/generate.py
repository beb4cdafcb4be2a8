"""Generate the project's own audio assets with ffmpeg's ``aevalsrc`` (pure formulas).

Each asset is a deterministic function of its formula, so the same ffmpeg makes the same
WAV bytes and, through the media pipeline, the same content address everywhere.
``python -m audio_assets.generate DIR`` writes them all into DIR.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

RATE = 48000


def _bell(freq: float, start: float, decay: float = 2.6, gain: float = 0.3) -> str:
    """A struck-bell partial set starting at ``start`` s: fundamental + two soft overtones."""
    d = f"(t-{start})"
    tone = f"(sin(2*PI*{freq}*{d})+0.35*sin(2*PI*{freq * 2.76:.2f}*{d})+0.15*sin(2*PI*{freq * 5.4:.2f}*{d}))"
    # 5 ms attack ramp so the note does not click, then an exponential decay.
    return f"gte(t,{start})*{gain}*min(1,{d}*200)*exp(-{decay}*{d})*{tone}"


def _sequence(freqs: list[float], step: float) -> str:
    return "+".join(_bell(f, round(i * step, 3)) for i, f in enumerate(freqs))


@dataclass(frozen=True)
class Asset:
    name: str
    expr: str
    seconds: float


C5, E5, G5, C6 = 523.25, 659.26, 783.99, 1046.5

ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        # Rising C-E-G-C: "a bulletin begins".
        Asset("chime-intro", _sequence([C5, E5, G5, C6], 0.38), 2.8),
        # Falling C-G-E-C: "the bulletin is over".
        Asset("chime-outro", _sequence([C6, G5, E5, C5], 0.38), 2.8),
        # Two-tone 880/660 Hz alternating four times: an emergency announcement follows.
        Asset(
            "alert-intro",
            "0.5*sin(2*PI*if(lt(mod(t,0.5),0.25),880,660)*t)*min(1,t*50)*min(1,(4-t)*50)",
            4.0,
        ),
        # 1 kHz sine: the technician's reference tone.
        Asset("test-tone", "0.5*sin(2*PI*1000*t)", 5.0),
        # Logarithmic sweep over the horn band, 300 Hz to 7 kHz in 8 s.
        Asset("test-sweep", "0.5*sin(2*PI*300*8/log(7000/300)*(exp(t/8*log(7000/300))-1))", 8.0),
    )
}


def generate(name: str, out: Path, *, timeout: float = 60) -> Path:
    """Write asset ``name`` as a mono 48 kHz 16-bit WAV at ``out`` (atomically)."""
    asset = ASSETS[name]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.wav")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
         "-i", f"aevalsrc=exprs='{asset.expr}':s={RATE}:d={asset.seconds}",
         "-ac", "1", "-c:a", "pcm_s16le", "-fflags", "+bitexact", "-flags:a", "+bitexact",
         "-map_metadata", "-1", "-y", str(tmp)],
        check=True, capture_output=True, timeout=timeout,
    )  # fmt: skip
    tmp.replace(out)
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "audio_assets/out")
    for asset_name in ASSETS:
        print(generate(asset_name, target / f"{asset_name}.wav"))
