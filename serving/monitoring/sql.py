"""Every SQL statement of monitoring, for both stores; values are always bound.

These statements only read the documented relations ``predictions`` and ``feedback``
(docs/monitoring.md), whatever storage layout is behind them, so they live beside the code
that uses them rather than in serving/predlog/sql.py, which holds the log's own writing
and paging SQL. The database does the counting and the averaging: a query returns one row
per version (and time bucket), per class, or per histogram cell, never the logged rows.

PostgreSQL statements use ``%(name)s`` parameters (psycopg), SQLite ones ``:name``.
Every statement takes ``model_name``, ``model_version`` (None: every version), ``since``
and ``until`` (None: unbounded), and those with a time bucket ``bucket_seconds`` (None:
one bucket, 0, for the whole window; else the bucket is floor(unix time / seconds)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

EPSILON = 2.220446049250313e-16
"""float64's machine epsilon: probabilities are clipped to [eps, 1 - eps] before the log,
as scikit-learn's log_loss does."""


@dataclass(frozen=True)
class Dialect:
    """The statements both stores have in one fixed form (cells: see below)."""

    counts: str
    classifier_quality: str
    regressor_quality: str
    class_series: str
    mean_series: str


# -- PostgreSQL --------------------------------------------------------------------------

_PG_SCOPE = """
WHERE p.model_name = %(model_name)s
  AND (%(model_version)s::text IS NULL OR p.model_version = %(model_version)s)
  AND (%(since)s::timestamptz IS NULL OR p.created_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR p.created_at < %(until)s)"""
_PG_BUCKET = """CASE WHEN %(bucket_seconds)s::integer IS NULL THEN 0
            ELSE floor(extract(epoch FROM p.created_at) / %(bucket_seconds)s)::bigint END"""
_PG_LABELLED = """
FROM predictions p
JOIN feedback f ON f.request_id = p.request_id AND f.row_index = p.row_index"""

# Bin of a number among a feature's edges: width_bucket counts the edges <= x (0 below the
# first); values outside the reference's range fall in the first or last bin, as the
# profile says (serving/artifact/metadata.py, NumberProfile).
_PG_BIN = "(least(greatest(width_bucket({x}, {edges}), 1), cardinality({edges}) - 1) - 1)"
_PG_EDGES = "%(edges)s::float8[]"
_PG_FEATURE_BIN = _PG_BIN.format(x="j.value::text::float8", edges="spec.edges")
_PG_PREDICTION_BIN = _PG_BIN.format(x="p.prediction::float8", edges=_PG_EDGES)

# One pass over the window's rows, one json_each per row, a value's JSON type taken once.
# The inner query groups by an integer bin (numbers) or a text (categories), the outer one
# turns the few resulting rows into cells. 100,000 rows of 30 features took 4 to 7 s on this
# project's busy two-core machine (most of it json_each and the per-value CASE).
PG_FEATURE_CELLS = f"""
WITH spec AS MATERIALIZED (
    SELECT s.key AS name,
           CASE WHEN json_typeof(s.value) = 'array' THEN ARRAY(
               SELECT e.edge::float8
               FROM json_array_elements_text(s.value) WITH ORDINALITY AS e(edge, n)
               ORDER BY e.n) END AS edges
    FROM json_each(%(spec)s::json) AS s
)
SELECT name, coalesce(bin::text, category) AS cell, n
FROM (
    SELECT j.key AS name,
           CASE WHEN spec.edges IS NOT NULL AND t.kind = 'number' THEN
               {_PG_FEATURE_BIN} END AS bin,
           CASE WHEN spec.edges IS NULL THEN
               CASE t.kind WHEN 'string' THEN j.value #>> '{{}}'
                    WHEN 'number' THEN j.value::text WHEN 'boolean' THEN j.value::text END
           END AS category,
           count(*) AS n
    FROM predictions p
    CROSS JOIN LATERAL json_each(p.features) AS j
    CROSS JOIN LATERAL (SELECT json_typeof(j.value) AS kind) AS t
    JOIN spec ON spec.name = j.key{_PG_SCOPE}
    GROUP BY 1, 2, 3
) AS counted"""

PG_PREDICTION_CELLS = f"""
SELECT CASE WHEN {_PG_EDGES} IS NULL THEN p.prediction ELSE {_PG_PREDICTION_BIN}::text END AS cell,
       count(*) AS n
FROM predictions p{_PG_SCOPE}
GROUP BY 1"""

POSTGRES = Dialect(
    counts=f"""
SELECT p.model_version, {_PG_BUCKET} AS bucket, count(*) AS predictions,
       min(p.created_at) AS first_at, max(p.created_at) AS last_at
FROM predictions p{_PG_SCOPE}
GROUP BY 1, 2
ORDER BY min(p.created_at)""",
    # Per true class first: balanced accuracy is the mean of the per-class recalls.
    classifier_quality=f"""
WITH labelled AS (
    SELECT p.model_version, {_PG_BUCKET} AS bucket, p.prediction, p.probabilities,
           f.label #>> '{{}}' AS truth{_PG_LABELLED}{_PG_SCOPE}
      AND json_typeof(f.label) IN ('string', 'number', 'boolean')
), per_class AS (
    SELECT model_version, bucket, truth, count(*) AS n,
           count(*) FILTER (WHERE prediction = truth) AS correct,
           count(probabilities) AS scored,
           sum(-ln(least(greatest(coalesce((probabilities ->> truth)::float8, 0),
                                  %(eps)s), 1 - %(eps)s)))
               FILTER (WHERE probabilities IS NOT NULL) AS loss
    FROM labelled
    GROUP BY model_version, bucket, truth
)
SELECT model_version, bucket, sum(n)::bigint AS labelled,
       sum(correct)::float8 / sum(n) AS accuracy,
       avg(correct::float8 / n) AS balanced_accuracy,
       sum(scored)::bigint AS scored,
       sum(loss) / nullif(sum(scored), 0) AS log_loss
FROM per_class
GROUP BY model_version, bucket""",
    regressor_quality=f"""
WITH labelled AS (
    SELECT p.model_version, {_PG_BUCKET} AS bucket, p.prediction::float8 AS predicted,
           (f.label #>> '{{}}')::float8 AS truth{_PG_LABELLED}{_PG_SCOPE}
      AND json_typeof(f.label) = 'number'
), centred AS (
    SELECT model_version, bucket, predicted, truth,
           avg(truth) OVER (PARTITION BY model_version, bucket) AS mean_truth
    FROM labelled
)
SELECT model_version, bucket, count(*) AS labelled,
       avg(abs(truth - predicted)) AS mae,
       sqrt(avg((truth - predicted) * (truth - predicted))) AS rmse,
       sum((truth - predicted) * (truth - predicted)) AS ss_res,
       sum((truth - mean_truth) * (truth - mean_truth)) AS ss_tot
FROM centred
GROUP BY model_version, bucket""",
    class_series=f"""
SELECT {_PG_BUCKET} AS bucket, p.prediction AS cell, count(*) AS n
FROM predictions p{_PG_SCOPE}
GROUP BY 1, 2""",
    mean_series=f"""
SELECT {_PG_BUCKET} AS bucket, count(*) AS n, avg(p.prediction::float8) AS mean
FROM predictions p{_PG_SCOPE}
GROUP BY 1""",
)


# -- SQLite ------------------------------------------------------------------------------

_SQLITE_SCOPE = """
WHERE p.model_name = :model_name
  AND (:model_version IS NULL OR p.model_version = :model_version)
  AND (:since IS NULL OR p.created_at >= :since)
  AND (:until IS NULL OR p.created_at < :until)"""
_SQLITE_BUCKET = """CASE WHEN :bucket_seconds IS NULL THEN 0
            ELSE CAST(strftime('%s', p.created_at) AS INTEGER) / :bucket_seconds END"""
_SQLITE_LABEL_TYPES = "('text', 'integer', 'real', 'true', 'false')"
_SQLITE_TRUTH = """CASE json_type(f.label) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
                ELSE CAST(json_extract(f.label, '$') AS TEXT) END"""
_SQLITE_PROBABILITY = (
    "(SELECT CAST(j.value AS REAL) FROM json_each(probabilities) j WHERE j.key = truth)"
)
_SQLITE_CATEGORY = """CASE j.type WHEN 'text' THEN j.value WHEN 'true' THEN 'true'
                WHEN 'false' THEN 'false' WHEN 'integer' THEN CAST(j.value AS TEXT)
                WHEN 'real' THEN CAST(j.value AS TEXT) END"""


def _sqlite_bin(value: str, prefix: str, edges: int) -> str:
    """A CASE that puts ``value`` in its bin among ``edges`` bound edges ``:<prefix>_<i>``.

    Only the inner edges decide (1 .. edges - 2): below the second edge is bin 0, from the
    second to last edge on the last bin, as PostgreSQL's clamped width_bucket.
    """
    if edges < 2:
        raise ValueError("a histogram needs at least two edges")
    steps = " ".join(f"WHEN {value} < :{prefix}_{i} THEN {i - 1}" for i in range(1, edges - 1))
    return f"CASE {steps} ELSE {edges - 2} END" if steps else "0"


def sqlite_feature_cells(edge_counts: Sequence[int]) -> str:
    """Cells of every feature in one pass; number k binds ``:number_<k>`` (its name) and
    ``:edge_<k>_<i>`` (its edges), ``:names`` is a JSON array of every feature's name."""
    numbers = "\n".join(
        f"    WHEN j.key = :number_{k} THEN CASE WHEN j.type IN ('integer', 'real') THEN "
        f"{_sqlite_bin('j.value', f'edge_{k}', count)} END"
        for k, count in enumerate(edge_counts)
    )
    return f"""
SELECT j.key AS name,
       CASE WHEN j.type = 'null' THEN NULL
{numbers}
            ELSE {_SQLITE_CATEGORY} END AS cell,
       count(*) AS n
FROM predictions p, json_each(p.features) AS j{_SQLITE_SCOPE}
  AND j.key IN (SELECT value FROM json_each(:names))
GROUP BY 1, 2"""


def sqlite_prediction_cells(edges: int | None) -> str:
    """Predicted classes, or a regressor's predictions binned among ``:edge_<i>``."""
    cell = (
        "p.prediction"
        if edges is None
        else _sqlite_bin("CAST(p.prediction AS REAL)", "edge", edges)
    )
    return f"""
SELECT {cell} AS cell, count(*) AS n
FROM predictions p{_SQLITE_SCOPE}
GROUP BY 1"""


SQLITE = Dialect(
    counts=f"""
SELECT p.model_version, {_SQLITE_BUCKET} AS bucket, count(*) AS predictions,
       min(p.created_at) AS first_at, max(p.created_at) AS last_at
FROM predictions p{_SQLITE_SCOPE}
GROUP BY 1, 2
ORDER BY min(p.created_at)""",
    classifier_quality=f"""
WITH labelled AS (
    SELECT p.model_version, {_SQLITE_BUCKET} AS bucket, p.prediction, p.probabilities,
           {_SQLITE_TRUTH} AS truth
    FROM predictions p
    JOIN feedback f ON f.request_id = p.request_id AND f.row_index = p.row_index{_SQLITE_SCOPE}
      AND json_type(f.label) IN {_SQLITE_LABEL_TYPES}
), per_class AS (
    SELECT model_version, bucket, truth, count(*) AS n,
           sum(prediction = truth) AS correct,
           count(probabilities) AS scored,
           sum(CASE WHEN probabilities IS NOT NULL THEN
               -ln(min(max(coalesce({_SQLITE_PROBABILITY}, 0.0), :eps), 1.0 - :eps)) END) AS loss
    FROM labelled
    GROUP BY model_version, bucket, truth
)
SELECT model_version, bucket, sum(n) AS labelled,
       CAST(sum(correct) AS REAL) / sum(n) AS accuracy,
       avg(CAST(correct AS REAL) / n) AS balanced_accuracy,
       sum(scored) AS scored,
       sum(loss) / nullif(sum(scored), 0) AS log_loss
FROM per_class
GROUP BY model_version, bucket""",
    regressor_quality=f"""
WITH labelled AS (
    SELECT p.model_version, {_SQLITE_BUCKET} AS bucket, CAST(p.prediction AS REAL) AS predicted,
           CAST(json_extract(f.label, '$') AS REAL) AS truth
    FROM predictions p
    JOIN feedback f ON f.request_id = p.request_id AND f.row_index = p.row_index{_SQLITE_SCOPE}
      AND json_type(f.label) IN ('integer', 'real')
), centred AS (
    SELECT model_version, bucket, predicted, truth,
           avg(truth) OVER (PARTITION BY model_version, bucket) AS mean_truth
    FROM labelled
)
SELECT model_version, bucket, count(*) AS labelled,
       avg(abs(truth - predicted)) AS mae,
       sqrt(avg((truth - predicted) * (truth - predicted))) AS rmse,
       sum((truth - predicted) * (truth - predicted)) AS ss_res,
       sum((truth - mean_truth) * (truth - mean_truth)) AS ss_tot
FROM centred
GROUP BY model_version, bucket""",
    class_series=f"""
SELECT {_SQLITE_BUCKET} AS bucket, p.prediction AS cell, count(*) AS n
FROM predictions p{_SQLITE_SCOPE}
GROUP BY 1, 2""",
    mean_series=f"""
SELECT {_SQLITE_BUCKET} AS bucket, count(*) AS n, avg(CAST(p.prediction AS REAL)) AS mean
FROM predictions p{_SQLITE_SCOPE}
GROUP BY 1""",
)
