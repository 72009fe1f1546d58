from __future__ import annotations

import fakeredis
import pytest

from tests.statestore_contract import StateStoreContract


class TestStateStoreOnFakeRedis(StateStoreContract):
    @pytest.fixture
    def client(self):
        return fakeredis.FakeRedis()
