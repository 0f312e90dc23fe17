"""The shared fixtures give what they promise: a real database and a real current model."""

from pathlib import Path

import psycopg

from serving import artifact


def test_models_dir_has_a_loadable_current_version(models_dir: Path) -> None:
    loaded = artifact.load(artifact.resolve(models_dir, "breast_cancer"))
    assert loaded.metadata.classes == ["benign", "malignant"]
    row = [[f.mean for f in loaded.metadata.features]]
    assert loaded.pipeline.predict_proba(row).shape == (1, 2)


def test_pg_url_is_a_fresh_database(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)
