"""Hardware seams an agent drives: audio output, amplifier relay, meters.

Each seam is a Protocol with a real implementation for the Pi; firmware_sim
imitates the same devices at the byte level so tests exercise the real code.
"""
