"""Fixtures for UI tests: UTC clock (snapshots show fixed times), a fake and a real engine."""

from __future__ import annotations

import time

import pytest

from tests.ui.fake_control import FakeControl, demo_exchanges


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def fake() -> FakeControl:
    return FakeControl(history=demo_exchanges())
