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
        clusters.append(start_cluster())
        clusters.append(start_cluster(ssl=True))  # the second one accepts TLS
        yield clusters
    finally:
        for cluster in clusters:
            cluster.stop()


@pytest.fixture(scope="session")
def pg(pg_clusters: list[Cluster]) -> Cluster:
    return pg_clusters[0]
