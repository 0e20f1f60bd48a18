"""Shared data for the local brain's tests: the recorded Home Assistant snapshot as a vocabulary."""

from __future__ import annotations

import pytest

from pibuddy.brain.vocabulary import Vocabulary, from_homeassistant
from pibuddy.drivers.homeassistant.index import Index
from tests.peers.fixtures_homeassistant import SNAPSHOT


class FixedVocabulary:
    """A vocabulary source over recorded data (what a driver would report)."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.value = vocabulary

    async def vocabulary(self) -> Vocabulary:
        return self.value


@pytest.fixture(scope="session")
def household() -> Vocabulary:
    return from_homeassistant(Index.from_snapshot(SNAPSHOT))
