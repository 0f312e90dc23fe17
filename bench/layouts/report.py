"""Markdown tables of a ``python -m bench.layouts --json`` report (docs/log-layout.md)."""

from __future__ import annotations

from typing import Any


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown(report: dict[str, Any]) -> str:
    out: list[str] = []
    encode = {
        (e["layout"], f"{e['workload']}x{e['rows_per_request']}"): e
        for e in report.get("encode", [])
    }
    cases = [c["summary"] for c in report.get("pg", {}).get("cases", [])]
    if cases:
        out.append(
            "| workload | layout | encode µs/row (+frame) | PG backend µs/row (schedstat)"
            " | other PG µs/row"
            " | writer µs/row | WAL B/row | replay staging new / dup µs/row"
            " | replay probe new / dup µs/row | table+index B/row |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for c in cases:
            e = encode.get((c["layout"], c["workload"]), {})
            frame = e.get("frame_us_per_row", 0.0)
            enc = f"{_f(e.get('us_per_row'), 2)}" + (f" (+{frame:.2f})" if frame else "")
            out.append(
                f"| {c['workload']} | {c['layout']} | {enc} | {_f(c['backend_us'])}"
                f" ({_f(c['backend_run_us'], 2)}) | {_f(c['others_us'])} | {_f(c['client_us'], 2)}"
                f" | {_f(c['wal_b'])} | {_f(c.get('replay_new_us'))} / {_f(c.get('replay_dup_us'))}"
                f" | {_f(c.get('probe_new_us'))} / {_f(c.get('probe_dup_us'))}"
                f" | {_f(c['total_b'], 0)} ({_f(c['table_b'], 0)} + {_f(c['index_b'], 0)}) |"
            )
        out.append("")
        out.append(
            "| workload | layout | feature, literal JSON | feature_values via view"
            " | base table form | page (wall) | next page (wall) | count per version (wall)"
            " | version page (wall) | log stats, 1 h (wall) |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for c in cases:
            cells = [
                f"{_f(c.get(f'{q}_cpu_ms'))}" for q in ("feature", "feature_values", "feature_base")
            ] + [
                f"{_f(c.get(f'{q}_cpu_ms'), 2)} ({_f(c.get(f'{q}_ms'), 1)})"
                for q in ("page", "next_page", "count", "version_page", "stats")
            ]
            out.append(f"| {c['workload']} | {c['layout']} | " + " | ".join(cells) + " |")
        out.append("")
    encode_only = [e for e in report.get("encode", []) if e["layout"] == "A-today"]
    for e in encode_only:
        out.append(
            f"today's RowEncoder ({e['workload']}x{e['rows_per_request']}):"
            f" {e['us_per_row']:.2f} µs/row, {e['bytes_per_row']:.0f} B/row"
        )
    sqlite = report.get("sqlite")
    if sqlite:
        out.append("")
        out.append("| SQLite | writer µs/row | feature query ms | page ms | file B/row |")
        out.append("|---|---|---|---|---|")
        for name, s in sqlite.items():
            feature = _f(s["feature_ms"])
            if "feature_fast_ms" in s:
                feature += f" (positional form {_f(s['feature_fast_ms'])})"
            out.append(
                f"| {name} | {_f(s['us_per_row'])} | {feature} | {_f(s['page_ms'], 2)}"
                f" | {_f(s['bytes_per_row'], 0)} |"
            )
    migrate = report.get("migrate")
    if migrate:
        out.append("")
        out.append(f"migration A -> D: {migrate}")
    return "\n".join(out)
