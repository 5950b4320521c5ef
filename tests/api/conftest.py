"""A live daemon pair with the API for each test module (tests/api/harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.harness import Live, start_live


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    pair = start_live(tmp_path_factory.mktemp("api"))
    yield pair
    pair.stop()
