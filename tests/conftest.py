"""Fixtures shared by the whole suite: labs (see tests/labkit.py), always taken down after use."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from labkit import LabHandle, start_lab


@pytest.fixture
def lab() -> Iterator[LabHandle]:
    """A fresh 3-node MySQL lab behind HAProxy, with fast timings (start 0.5 s, stop 0.3 s)."""
    with start_lab() as handle:
        yield handle


@pytest.fixture
def lab_factory() -> Iterator[Callable[..., LabHandle]]:
    """`lab_factory(nodes=2, lb="nginx", ...)` starts a lab; every lab started is taken down at the end."""
    with contextlib.ExitStack() as labs:

        def make(**options: Any) -> LabHandle:
            return labs.enter_context(start_lab(**options))

        yield make


@pytest.fixture
def pool() -> Iterator[Any]:
    """Three loopback backends for the load-balancer tests (tests/lbkit.py), counting the requests they get."""
    from lbkit import backends

    with backends(3) as started:
        yield started


@pytest.fixture
def site(tmp_path: Any) -> Iterator[Any]:
    """A fake site (tests/fakes.py): three local hosts running SOURCE, the fake cluster API over them; a test file
    that needs another site defines its own `site`."""
    from fakes import FakeSite

    built = FakeSite.build(tmp_path)
    yield built
    built.stop_all()
