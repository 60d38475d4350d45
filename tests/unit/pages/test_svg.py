"""The charts: one mark per day, scaled to the data, every text escaped, no style attribute."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from mailopsd.pages.svg import DayBar, RatePoint, bar_chart, rate_chart

SVG = "{http://www.w3.org/2000/svg}"


def _parsed(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own output


class TestBarChart:
    def test_one_group_a_day_with_both_parts(self) -> None:
        bars = [DayBar(f"2026-11-{day:02d}", day, day // 2) for day in range(1, 31)]
        root = _parsed(bar_chart("ada <&> sends", bars))
        days = root.findall(f"{SVG}g")
        assert len(days) == 30
        assert [group.get("data-day") for group in days][-1] == "2026-11-30"
        last = days[-1]
        assert last.findtext(f"{SVG}title") == "2026-11-30: 30 step 1, 15 follow-ups"
        step1, followups = last.findall(f"{SVG}rect")
        assert (step1.get("class"), followups.get("class")) == ("step1", "followups")
        # the tallest day fills the plot (45 under a top of 50): its follow-ups sit on top
        assert float(followups.get("y", "0")) < float(step1.get("y", "0"))
        assert root.get("aria-label") == "ada <&> sends"

    def test_no_style_and_no_script(self) -> None:
        svg = bar_chart("x", [DayBar("2026-11-01", 1, 0)])
        assert "style=" not in svg
        assert "<script" not in svg

    def test_an_empty_range(self) -> None:
        assert _parsed(bar_chart("nothing", [])).findall(f"{SVG}g") == []


class TestRateChart:
    def test_points_only_where_the_window_had_sends(self) -> None:
        points = [RatePoint("2026-11-01", 0, 0), RatePoint("2026-11-02", 1, 20)]
        points += [RatePoint("2026-11-03", 3, 30)]
        root = _parsed(rate_chart("rate", points, 0.05))
        circles = root.findall(f"{SVG}circle")
        assert [c.findtext(f"{SVG}title") for c in circles] == [
            "2026-11-02: 5.0% (1/20)",
            "2026-11-03: 10.0% (3/30)",
        ]
        threshold = root.find(f"{SVG}line[@class='threshold']")
        assert threshold is not None
        assert threshold.findtext(f"{SVG}title") == "threshold 5.0%"
        polyline = root.find(f"{SVG}polyline")
        assert polyline is not None
        assert len(re.findall(r"[\d.]+,[\d.]+", polyline.get("points", ""))) == 2
