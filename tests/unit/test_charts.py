"""Charts people read at a glance (controller/web/charts.py, issue 20): axes with units, a
threshold line, a minimum span so noise stays flat, one sample drawn as a point, numbers
the Vietnamese way, report bars."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # the Element type; parsing goes through defusedxml
from datetime import UTC, datetime, timedelta

from defusedxml.ElementTree import fromstring

from controller.web.charts import Bar, Threshold, bar_chart, line_chart, number

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)  # 08:00 in Việt Nam


def _svg(markup: str) -> ET.Element:
    return fromstring(str(markup).replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def _texts(root: ET.Element, cls: str) -> list[str]:
    return [el.text or "" for el in root.iter() if cls in (el.get("class") or "").split()]


def _line_ys(root: ET.Element) -> list[float]:
    path = next(el for el in root.iter(f"{SVG}path") if el.get("class") == "chart-line")
    return [float(y) for y in re.findall(r"[\d.]+,([\d.]+)", path.get("d") or "")]


def test_axes_carry_units_local_times_and_the_alarm_threshold() -> None:
    series = [(T0 + timedelta(minutes=10 * i), 40.0 + i) for i in range(12)]
    chart = line_chart(
        "Nhiệt độ tủ",
        "°C",
        series,
        metric="cabinet_temp_c",
        thresholds=[Threshold(60.0, "Ngưỡng cảnh báo")],
        lang="vi",
    )
    root = _svg(chart.svg)
    assert _texts(root, "chart-unit") == ["°C"]
    yticks = _texts(root, "chart-ytick")
    assert len(yticks) >= 3 and "60" in yticks  # round numbers, the threshold inside the scale
    assert _texts(root, "chart-xtick") == ["08:00", "08:55", "09:50"]  # 24-hour local time
    assert _texts(root, "chart-threshold-label") == ["Ngưỡng cảnh báo 60 °C"]
    threshold = next(el for el in root.iter(f"{SVG}line") if el.get("class") == "chart-threshold")
    top, height = float(root.get("data-plot-top") or 0), float(root.get("data-plot-height") or 0)
    assert top <= float(threshold.get("y1") or -1) <= top + height
    assert len([el for el in root.iter(f"{SVG}line") if el.get("class") == "chart-grid"]) >= 5


def test_a_tenth_of_a_degree_stays_a_flat_line() -> None:
    series = [(T0 + timedelta(minutes=i), 31.0 + (0.1 if i % 2 else 0.0)) for i in range(30)]
    root = _svg(line_chart("Nhiệt độ CPU", "°C", series, metric="cpu_temp_c").svg)
    ys = _line_ys(root)
    height = float(root.get("data-plot-height") or 0)
    assert max(ys) - min(ys) < 0.05 * height  # a wobble, not a box-filling swing
    lo, hi = float(root.get("data-y-min") or 0), float(root.get("data-y-max") or 0)
    assert hi - lo >= 10 and lo <= 31.0 and hi >= 31.1


def test_one_sample_is_a_point() -> None:
    chart = line_chart("Điện lưới", "V", [(T0, 221.5)], metric="mains_v", lang="vi")
    root = _svg(chart.svg)
    points = [el for el in root.iter(f"{SVG}circle") if el.get("class") == "chart-point"]
    assert len(points) == 1 and not [el for el in root.iter(f"{SVG}path")]
    assert chart.last == 221.5 and _texts(root, "chart-xtick") == ["08:00"]


def test_numbers_the_vietnamese_way() -> None:
    assert number(1234.5, "vi") == "1.234,5" and number(1234.5, "en") == "1,234.5"
    bars = bar_chart([Bar("Xã Hợp Hòa", 12.5), Bar("Xã Kim Long", 99.25, kind="bad")], unit="phút", lang="vi")
    root = _svg(bars)
    assert _texts(root, "bar-value") == ["12,5 phút", "99,2 phút"]
    widths = [float(el.get("width") or 0) for el in root.iter(f"{SVG}rect")]
    assert widths[0] < widths[1] and widths[1] > 0
