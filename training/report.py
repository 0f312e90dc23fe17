"""Human-readable text for the CLI: the training summary, the version table, one version."""

from __future__ import annotations

from pathlib import Path

from serving import artifact
from training.evaluate import PRIMARY_METRIC
from training.job import Outcome
from training.registry import HistoryEntry, ModelRow, VersionRow


def summary(outcome: Outcome) -> str:
    """What was trained, how well, where it is, and whether it is now current and why."""
    meta = outcome.metadata
    primary = PRIMARY_METRIC[meta.task]
    test_size = float(meta.params.get("test_size", 0.2))
    if meta.origin == "registered":
        evaluated = "Metrics on the evaluation data (the model was fitted elsewhere):"
    else:
        evaluated = (
            f"Held-out metrics ({test_size:.0%} of rows, stratified for classifiers; "
            "CV on the rest):"
        )
    lines = [
        "",
        f"Model      {meta.name} {meta.version} ({meta.origin})",
        f"Estimator  {_estimator(meta)}",
        f"Data       {meta.dataset.source} ({meta.dataset.n_rows} rows, "
        f"{meta.dataset.n_features} features, {meta.task}) {meta.dataset.fingerprint[:19]}",
        f"Features   {_feature_types(meta)}",
        evaluated,
    ]
    for key, value in meta.metrics.items():
        cv = meta.cv_metrics.get(key)
        cv_text = f"   CV {cv['mean']:.4f} ± {cv['std']:.4f}" if cv else ""
        marker = "  <- primary" if key == primary else ""
        lines.append(f"  {key:<18} {value:.4f}{cv_text}{marker}")
    if meta.confusion_matrix is not None and meta.classes is not None:
        lines.append(f"Confusion matrix (rows true, columns predicted: {', '.join(meta.classes)}):")
        lines.extend(f"  {' '.join(f'{v:5d}' for v in row)}" for row in meta.confusion_matrix)
    lines += [
        f"Artifact   {outcome.path}",
        f"           {meta.model_file} sha256 {meta.files[meta.model_file]}"
        + (" (metadata signed)" if meta.signature else ""),
        f"           model fingerprint {meta.fingerprint}",
        f"           trusted types: {_trusted(meta)}",
        "           verified: digests match, reloaded, predictions identical",
        f"Quality gate: {'passed' if outcome.gate.passed else 'REFUSED'}",
    ]
    lines.extend(f"  - {reason}" for reason in (*outcome.gate.reasons, *outcome.notes))
    if outcome.promoted:
        how = " (FORCED past the quality gate by --force / TRAIN_FORCE)" if outcome.forced else ""
        lines.append(
            f"Promoted{how}: {meta.name} {meta.version} is now current "
            f"(previous: {outcome.previous or 'none'})"
        )
    else:
        lines.append(
            f"NOT promoted: current stays {outcome.previous or '(none)'}. The version is "
            f"registered; promote it with `python -m training promote {meta.version} "
            f"--name {meta.name}` or retrain with --force."
        )
    return "\n".join(lines)


def models_table(models_dir: Path, rows: list[ModelRow]) -> str:
    """One line per model of the registry: its current version and how good it is."""
    if not rows:
        return f"no models in {models_dir}: train one with `python -m training train`"
    header = f"{'MODEL':<24} {'CURRENT VERSION':<23} {'VERSIONS':>8}  {'ESTIMATOR':<23} METRIC"
    lines = [f"models in {models_dir}", header]
    for row in rows:
        current = row.current or "(none)"
        meta = row.metadata
        if meta is None:
            what = f"unreadable: {row.problem}" if row.problem else ""
            lines.append(f"{row.name:<24} {current:<23} {row.versions:>8}  {what}".rstrip())
            continue
        metric = PRIMARY_METRIC[meta.task]
        lines.append(
            f"{row.name:<24} {current:<23} {row.versions:>8}  {meta.estimator:<23} "
            f"{metric} {meta.metrics.get(metric, float('nan')):.4f}"
        )
    lines.append("one model's versions: `python -m training list --name NAME`")
    return "\n".join(lines)


def versions_table(name: str, models_dir: Path, rows: list[VersionRow]) -> str:
    """One line per version, oldest first; ``*`` marks the current one."""
    if not rows:
        return f"no versions of model {name!r} in {models_dir}"
    header = f"  {'VERSION':<23} {'CREATED (UTC)':<20} {'ESTIMATOR':<23} PRIMARY METRIC"
    lines = [f"model {name!r} in {models_dir}", header]
    for row in rows:
        mark = "*" if row.current else " "
        meta = row.metadata
        if meta is None:
            lines.append(f"{mark} {row.version:<23} unreadable: {row.problem}")
            continue
        metric = PRIMARY_METRIC[meta.task]
        created = meta.created_at.strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"{mark} {row.version:<23} {created:<20} {meta.estimator:<23} "
            f"{metric} {meta.metrics.get(metric, float('nan')):.4f}"
        )
    if not any(row.current for row in rows):
        lines.append("no current version: promote one with `python -m training promote VERSION`")
    return "\n".join(lines)


def describe(meta: artifact.Metadata, path: Path, *, current: bool, verified: str) -> str:
    """The metadata of one version, for ``python -m training show``."""
    libs = meta.libraries
    lines = [
        f"name         {meta.name}",
        f"version      {meta.version}{'  (current)' if current else ''}",
        f"path         {path}",
        f"created_at   {meta.created_at.isoformat()}",
        f"task         {meta.task}, target {meta.target!r}",
        f"estimator    {_estimator(meta)}",
        f"dataset      {meta.dataset.source}, {meta.dataset.n_rows} rows, "
        f"{meta.dataset.n_features} features, {meta.dataset.fingerprint}",
        f"features     {_feature_types(meta)}",
        f"origin       {meta.origin}"
        + (f", converted from {meta.converted_from}" if meta.converted_from else ""),
        f"format       {meta.format} ({meta.model_file}); trusted types: {_trusted(meta)}",
        f"fingerprint  {meta.fingerprint or 'none (saved before fingerprints)'}",
    ]
    if meta.classes is not None:
        lines.append(f"classes      {', '.join(meta.classes)}")
    lines.append("metrics      " + ", ".join(f"{k} {v:.4f}" for k, v in meta.metrics.items()))
    lines += [
        f"libraries    python {libs.python}, scikit-learn {libs.scikit_learn}, "
        f"numpy {libs.numpy}, scipy {libs.scipy}, joblib {libs.joblib}, "
        f"skops {libs.skops or '-'}, pandas {libs.pandas or '-'}",
        f"git commit   {meta.git_commit or 'unknown'}",
        "files        "
        + ", ".join(f"{name} sha256 {digest}" for name, digest in meta.files.items()),
        f"signature    {'hmac-sha256' if meta.signature else 'unsigned'}",
        f"verified     {verified}",
    ]
    return "\n".join(lines)


def _trusted(meta: artifact.Metadata) -> str:
    if meta.format == "joblib":
        return "n/a (a pickle: loads only signed or with MODEL_ALLOW_PICKLE)"
    return ", ".join(meta.trusted_types) or "none beyond skops' defaults"


def _feature_types(meta: artifact.Metadata) -> str:
    """``name (type[, nullable])`` for each feature, in order."""
    return ", ".join(
        f"{f.name} ({f.type}{', nullable' if f.nullable else ''})" for f in meta.features
    )


def history_line(entry: HistoryEntry) -> str:
    return f"{entry.action}: {entry.version} is now current (previous: {entry.previous or 'none'})"


def _estimator(meta: artifact.Metadata) -> str:
    params = {k: v for k, v in meta.params.items() if k != "test_size"}
    seed = f"seed={meta.seed}" if meta.origin == "trained" else "fitted elsewhere (registered)"
    return " ".join([meta.estimator, *(f"{k}={v!r}" for k, v in params.items()), seed])
