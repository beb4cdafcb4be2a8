"""Faults a test (or a demo operator) can switch on in simulated station hardware."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class Faults:
    """Mutable fault switches shared by the serial line, the cabinet and the sink.

    One object is shared so flipping a switch takes effect on the next byte or reading.
    """

    no_reply: bool = False  # the RS-485 bus swallows every reply (cable unplugged)
    garble: bool = False  # replies arrive with flipped bits (noise, bad termination)
    cut_speaker_line: bool = False  # amplifier idles even while audio plays
    mains_loss: bool = False  # meter reads 0 V / 0 A
    overheat: bool = False  # cabinet sensor reads 68 °C

    def set(self, name: str, value: bool) -> None:
        """Switch a fault by name; unknown names are an error, not a silent no-op."""
        names = self.names()
        if name not in names:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(names))}")
        if not isinstance(value, bool):
            raise TypeError(f"fault {name!r} takes a bool, got {value!r}")
        setattr(self, name, value)

    def as_dict(self) -> dict[str, bool]:
        """Current switches, e.g. for a status page or a test failure message."""
        return asdict(self)

    @classmethod
    def names(cls) -> frozenset[str]:
        """All fault names."""
        return frozenset(f.name for f in fields(cls))
