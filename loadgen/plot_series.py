#!/usr/bin/python3
"""Draws segload's per-second series (--csv) as an SVG chart: rates over time on top,
latencies (log scale) below, each phase of the run shaded and named.

Standard library only. Usage:
    plot_series.py series.csv -o chart.svg [--title TEXT]
"""

import argparse
import csv
import math
import sys
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 960, 640
LEFT, RIGHT, TOP, GAP, BOTTOM = 80, 190, 48, 56, 52
PANEL_HEIGHT = (HEIGHT - TOP - 12 - GAP - BOTTOM) // 2

RATES = [  # column, label, colour, dash
    ("acked_per_s", "acked updates/s", "#1f77b4", ""),
    ("sent_per_s", "sent updates/s", "#1f77b4", "5,4"),
    ("changes_per_s", "changes/s received", "#2ca02c", ""),
]
LATENCIES = [
    ("ack_p50_ms", "ack p50", "#ff7f0e", ""),
    ("ack_p99_ms", "ack p99", "#ff7f0e", "5,4"),
    ("latency_p50_ms", "update-to-change p50", "#d62728", ""),
    ("latency_p99_ms", "update-to-change p99", "#d62728", "5,4"),
]
PHASE_FILL = ["#f2f2f2", "#e6eef7"]


def read_rows(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = []
        for r in reader:
            row = {"phase": r["phase"]}
            for key, value in r.items():
                if key != "phase":
                    row[key] = float(value)
            rows.append(row)
    if not rows:
        sys.exit(f"{path}: no rows")
    return rows


def segments(rows):
    """Runs of consecutive rows of one phase: (phase, [rows])."""
    out = []
    for r in rows:
        if out and out[-1][0] == r["phase"] and r["t_s"] - out[-1][1][-1]["t_s"] < 2.5:
            out[-1][1].append(r)
        else:
            out.append((r["phase"], [r]))
    return out


def nice_ticks(hi, count=5):
    if hi <= 0:
        return [0, 1]
    raw = hi / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < hi:
        ticks.append(ticks[-1] + step)
    return ticks


def human(v):
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


class Chart:
    def __init__(self, t0, t1):
        self.t0, self.t1 = t0, t1
        self.parts = []

    def x(self, t):
        return LEFT + (t - self.t0) / max(self.t1 - self.t0, 1e-9) * (WIDTH - LEFT - RIGHT)

    def add(self, svg):
        self.parts.append(svg)

    def text(self, x, y, s, anchor="start", size=12, weight="normal", colour="#333"):
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                 f'font-weight="{weight}" fill="{colour}">{escape(s)}</text>')

    def line(self, x1, y1, x2, y2, colour="#ccc", width=1):
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                 f'stroke="{colour}" stroke-width="{width}"/>')

    def polyline(self, points, colour, dash):
        if not points:
            return
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<polyline points="{coords}" fill="none" stroke="{colour}" '
                 f'stroke-width="1.8"{dash_attr}/>')


def draw_panel(chart, runs, top, series, title, log_scale):
    bottom = top + PANEL_HEIGHT
    values = [r[c] for _, rows in runs for r in rows for c, *_ in series if r[c] > 0]
    if log_scale:
        lo = 10 ** math.floor(math.log10(min(values))) if values else 0.1
        hi = 10 ** math.ceil(math.log10(max(values))) if values else 10
        if hi <= lo:
            hi = lo * 10

        def y(v):
            return bottom - (math.log10(v) - math.log10(lo)) / (
                math.log10(hi) - math.log10(lo)) * PANEL_HEIGHT
        ticks = []
        decade = lo
        while decade <= hi * 1.0001:
            ticks += [decade * m for m in (1, 2, 5) if decade * m <= hi * 1.0001]
            decade *= 10
    else:
        ticks = nice_ticks(max(values) if values else 1)
        hi = ticks[-1]

        def y(v):
            return bottom - v / hi * PANEL_HEIGHT
    for t in ticks:
        chart.line(LEFT, y(t), WIDTH - RIGHT, y(t), "#e3e3e3")
        chart.text(LEFT - 6, y(t) + 4, human(t), "end", 11)
    chart.line(LEFT, bottom, WIDTH - RIGHT, bottom, "#888")
    chart.line(LEFT, top, LEFT, bottom, "#888")
    chart.text(LEFT, top - 8, title, size=13, weight="bold")
    for column, _, colour, dash in series:
        for _, rows in runs:
            if not any(r[column] > 0 for r in rows):
                continue  # not measured in this phase (no subscriber, say)
            points = [(chart.x(r["t_s"]), y(r[column])) for r in rows
                      if not log_scale or r[column] > 0]
            chart.polyline(points, colour, dash)
    legend_y = top + 6
    for column, label, colour, dash in series:
        if not any(r[column] > 0 for _, rows in runs for r in rows):
            continue
        x = WIDTH - RIGHT + 14
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        chart.add(f'<line x1="{x}" y1="{legend_y}" x2="{x + 24}" y2="{legend_y}" '
                  f'stroke="{colour}" stroke-width="2"{dash_attr}/>')
        chart.text(x + 30, legend_y + 4, label, size=11)
        legend_y += 18


def render(rows, title):
    runs = segments(rows)
    t0 = min(r["t_s"] for r in rows) - 1
    t1 = max(r["t_s"] for r in rows)
    chart = Chart(t0, t1)
    rate_top = TOP + 12
    latency_top = rate_top + PANEL_HEIGHT + GAP
    for i, (phase, phase_rows) in enumerate(runs):
        x0, x1 = chart.x(phase_rows[0]["t_s"] - 1), chart.x(phase_rows[-1]["t_s"])
        for top in (rate_top, latency_top):
            chart.add(f'<rect x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 1):.1f}" '
                      f'height="{PANEL_HEIGHT}" fill="{PHASE_FILL[i % 2]}"/>')
        chart.text((x0 + x1) / 2, rate_top + 14, phase, "middle", 11, colour="#666")
    draw_panel(chart, runs, rate_top, RATES, "rate, per second", log_scale=False)
    draw_panel(chart, runs, latency_top, LATENCIES, "latency, ms (log scale)", log_scale=True)
    ticks = nice_ticks(t1 - t0, 8)
    step = ticks[1] - ticks[0]
    t = math.ceil(t0 / step) * step
    while t <= t1:
        x = chart.x(t)
        chart.line(x, latency_top + PANEL_HEIGHT, x, latency_top + PANEL_HEIGHT + 4, "#888")
        chart.text(x, latency_top + PANEL_HEIGHT + 17, f"{t:g}", "middle", 11)
        t += step
    chart.text((LEFT + WIDTH - RIGHT) / 2, HEIGHT - 8, "seconds since segload started",
               "middle", 11)
    chart.text(LEFT, 22, title, size=15, weight="bold")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">\n'
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>\n'
            + "\n".join(chart.parts) + "\n</svg>\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="segload --csv output")
    parser.add_argument("-o", "--output", required=True, help="SVG file to write")
    parser.add_argument("--title", default=None)
    args = parser.parse_args()
    rows = read_rows(args.csv)
    svg = render(rows, args.title or f"segload: {args.csv}")
    with open(args.output, "w") as f:
        f.write(svg)


if __name__ == "__main__":
    main()
