"""Session-wide PostgreSQL clusters (one pair per pytest-xdist worker: each has its session)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.wire.pg import Cluster, pg_bin, start_cluster


@pytest.fixture(scope="session")
def pg_clusters() -> Iterator[list[Cluster]]:
    if pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (Debian package postgresql; .ci/run)")
        pytest.skip("PostgreSQL is not installed (Debian package postgresql)")
    clusters: list[Cluster] = []
    try:
        for _ in range(2):
            clusters.append(start_cluster())
        yield clusters
    finally:
        for cluster in clusters:
            cluster.stop()


@pytest.fixture(scope="session")
def pg(pg_clusters: list[Cluster]) -> Cluster:
    return pg_clusters[0]
