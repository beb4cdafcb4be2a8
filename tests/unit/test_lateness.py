"""Why a station was late (controller/services/lateness.py): each cause from the timestamps the
controller keeps, in the order an operator needs them, and the panel's sentence for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.services.lateness import LateCause, Outage, StationTimes, explain
from controller.web.lateness import describe

T0 = datetime(2026, 12, 6, 3, 0, 0, tzinfo=UTC)  # 10:00:00 in Hà Nội
NOW = T0 + timedelta(minutes=5)


def times(**kw: object) -> StationTimes:
    base: dict[str, object] = dict(start_at=T0, created_at=T0 - timedelta(seconds=10),
                                   sent_at=T0 - timedelta(seconds=10), received_at=T0 - timedelta(seconds=9),
                                   status="played", start_error_ms=12.0)  # fmt: skip
    return StationTimes(**(base | kw))  # type: ignore[arg-type]


def test_on_time_is_not_late_and_a_future_start_is_not_late_yet() -> None:
    assert explain(times(), [], NOW) is None
    assert explain(times(status=None, received_at=None), [], T0 - timedelta(seconds=1)) is None


def test_received_in_time_but_started_late_is_the_stations_own() -> None:
    outage = Outage(T0 - timedelta(seconds=30), T0 - timedelta(seconds=20))
    late = explain(times(start_error_ms=4200.0), [outage], NOW)
    assert late is not None and late.cause is LateCause.STARTED_LATE and late.late_ms == 4200.0


def test_a_broker_outage_between_creation_and_receipt_is_named_with_its_interval() -> None:
    outage = Outage(T0 - timedelta(seconds=12), T0 + timedelta(seconds=8))
    late = explain(times(received_at=T0 + timedelta(seconds=9), start_error_ms=10250.0), [outage], NOW)
    assert late is not None and late.cause is LateCause.BROKER_UNREACHABLE and late.outage == outage
    text = describe(late.body(), "Asia/Ho_Chi_Minh", "vi")
    assert text.startswith("Phát trễ 10,2 giây.") or text.startswith("Phát trễ 10,3 giây.")
    assert "Máy chủ MQTT không trả lời từ 06/12/2026 09:59:48 đến 06/12/2026 10:00:08" in text
    assert "did not answer from 06/12/2026 09:59:48 to 06/12/2026 10:00:08" in describe(
        late.body(), "Asia/Ho_Chi_Minh", "en")


def test_an_outage_that_ended_before_the_broadcast_was_made_is_not_the_cause() -> None:
    before = Outage(T0 - timedelta(hours=1), T0 - timedelta(minutes=50))
    late = explain(times(received_at=T0 + timedelta(seconds=3), start_error_ms=3000.0), [before], NOW)
    assert late is not None and late.cause is LateCause.RECEIVED_LATE


def test_sent_after_the_start_is_the_controllers_and_received_late_is_the_link() -> None:
    sent_late = explain(times(sent_at=T0 + timedelta(seconds=5), received_at=T0 + timedelta(seconds=5),
                              start_error_ms=5000.0), [], NOW)  # fmt: skip
    assert sent_late is not None and sent_late.cause is LateCause.SENT_LATE
    link = explain(times(received_at=T0 + timedelta(seconds=20), start_error_ms=20000.0), [], NOW)
    assert link is not None and link.cause is LateCause.RECEIVED_LATE
    assert "Trạm nhận lệnh lúc 06/12/2026 10:00:20" in describe(link.body(), "Asia/Ho_Chi_Minh", "vi")


def test_missed_and_still_silent_stations_are_reported_without_a_duration() -> None:
    open_outage = Outage(T0 - timedelta(seconds=5), None)
    missed = explain(times(status="missed", start_error_ms=None, received_at=None), [open_outage], NOW)
    assert missed is not None and missed.late_ms is None and missed.cause is LateCause.BROKER_UNREACHABLE
    assert describe(missed.body(), "Asia/Ho_Chi_Minh", "vi").startswith(
        "Chưa phát. Máy chủ MQTT không trả lời từ 06/12/2026 09:59:55 và vẫn chưa trả lời")
    silent = explain(times(status=None, received_at=None, start_error_ms=None), [], NOW)
    assert silent is not None and silent.cause is LateCause.RECEIVED_LATE
    assert describe(silent.body(), "Asia/Ho_Chi_Minh", "en") == (
        "Not started. The station has not received the command (it is offline or its link is slow).")


def test_a_broadcast_cancelled_before_its_start_has_no_late_station() -> None:
    """No station was supposed to play it any more: silence is not lateness, whatever the broker did."""
    open_outage = Outage(T0 - timedelta(seconds=5), None)
    for status in (None, "missed"):
        silent = times(status=status, received_at=None, start_error_ms=None, cancelled=True)
        assert explain(silent, [open_outage], NOW) is None
    # Cancelled after it went on air: a station that really started late still says so.
    started = explain(times(start_error_ms=4200.0, cancelled=True), [], NOW)
    assert started is not None and started.cause is LateCause.STARTED_LATE
