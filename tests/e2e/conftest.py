from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.pg import PgServer
from tests.support.stack import Stack, running_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, pg: PgServer) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("e2e"), pg) as s:
        yield s
