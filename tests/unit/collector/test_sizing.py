"""How many verifier processes and DuckDB threads a collector runs on a given number of cores."""

from __future__ import annotations

import pytest

from collector import app

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("cores", "verifiers", "duckdb_threads"),
    [(1, 1, 1), (2, 1, 1), (3, 2, 1), (4, 3, 2), (8, 4, 4), (64, 4, 32)],
)
def test_the_verifiers_leave_a_core_to_the_writer_and_duckdb_gets_half(
    cores: int, verifiers: int, duckdb_threads: int
) -> None:
    assert app.default_verifiers(cores) == verifiers
    assert app.duckdb_threads(cores) == duckdb_threads
