"""`communecast audio measure | bench-upload | assets`: the audio pipeline from a shell.

`bench-upload` answers "how long does an upload take now that it is normalized in two
passes?" for a file of a given length (docs/audio.md quotes its numbers).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path


def _measure(args: argparse.Namespace) -> int:
    from controller.services.audio_pipeline import process

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as work:
        result = process(Path(args.file), Path(work) / "out.opus")
    print(json.dumps({
        "source_lufs": result.source.integrated_lufs, "source_true_peak_dbtp": result.source.true_peak_dbtp,
        "loudness_lufs": result.output.integrated_lufs, "true_peak_dbtp": result.output.true_peak_dbtp,
        "normalization": result.normalization, "warnings": [w.code for w in result.warnings],
        "seconds": round(time.monotonic() - started, 2),
    }, ensure_ascii=False))  # fmt: skip
    return 0


def _bench_upload(args: argparse.Namespace) -> int:
    from controller.services.media import MediaStore

    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        store = MediaStore(work / "media", max_bytes=500 * 2**20)
        sources = {
            # Loudness that moves like speech does (syllable-rate envelope on a sweeping tone).
            "speech-like.mp3": ["-f", "lavfi", "-i",
                                f"aevalsrc='0.3*sin(2*PI*(300+400*t/{args.seconds})*t)*abs(sin(PI*4*t))'"
                                f":s=44100:d={args.seconds}"],
            "stereo-noise.wav": ["-f", "lavfi", "-i", f"anoisesrc=d={args.seconds}:c=pink:a=0.2", "-ac", "2"],
        }  # fmt: skip
        for name, src in sources.items():
            path = work / name
            subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *src, str(path)], check=True)
            times = []
            for _ in range(args.repeat):
                started = time.monotonic()
                with path.open("rb") as fh:
                    stored = store.ingest(fh, name)
                times.append(time.monotonic() - started)
                stored.path.unlink()
            print(f"{name}: {args.seconds:.0f} s of audio, {path.stat().st_size / 2**20:.1f} MB, ingest "
                  f"{min(times):.2f}-{max(times):.2f} s over {args.repeat} runs; "
                  f"{stored.loudness_lufs} LUFS, {stored.true_peak_dbtp} dBTP, {stored.normalization}")
    return 0


def _assets(args: argparse.Namespace) -> int:
    from audio_assets.generate import ASSETS, generate

    for name in ASSETS:
        print(generate(name, Path(args.out) / f"{name}.wav"))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    audio = sub.add_parser("audio", help="audio pipeline: measure, bench an upload, generate assets")
    audio_sub = audio.add_subparsers(dest="action", required=True)
    measure = audio_sub.add_parser("measure", help="normalize a file like an upload, print the numbers")
    measure.add_argument("file")
    measure.set_defaults(func=_measure)
    bench = audio_sub.add_parser("bench-upload", help="time the upload pipeline on generated audio")
    bench.add_argument("--seconds", type=float, default=60.0)
    bench.add_argument("--repeat", type=int, default=3)
    bench.set_defaults(func=_bench_upload)
    assets = audio_sub.add_parser("assets", help="write the generated chimes and test signals as WAV")
    assets.add_argument("--out", default="audio_assets/out")
    assets.set_defaults(func=_assets)
