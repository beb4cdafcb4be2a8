"""Tests that start a real broker, database server, ffmpeg, pty or served app with a few components."""
