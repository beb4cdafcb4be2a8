"""Sounds the project makes itself (never downloaded, never checked in): bulletin chimes,
an emergency intro and test signals, synthesized by ffmpeg from the formulas in
``audio_assets.generate`` (``python -m audio_assets.generate DIR`` writes them)."""
