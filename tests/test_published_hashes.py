"""Every published tiny dataset regenerates to the bytes its card publishes.

`cfdbench leaderboard submit` ranks only entries evaluated on a card's ``published_content_hashes``,
so a solver change that moves those bytes must bump the card's version and republish the hash in
the same commit; this test is what notices (the channel's hash: ``test_channel_data.py``'s tiny-preset
test).
"""

import pytest

from cfdbench.cards import load_dataset_card
from cfdbench.data.dataset_dir import content_hash
from cfdbench.data.generate import generate_dataset
from cfdbench.leaderboard.submit import published_hash

TINY_DATASETS = ["cavity-mini", "tube-tiny", "dam-tiny", "cylinder-tiny"]


@pytest.mark.slow
@pytest.mark.parametrize("dataset", TINY_DATASETS)
def test_tiny_dataset_regenerates_to_its_published_hash(dataset, tmp_path):
    card = load_dataset_card(dataset)
    generate_dataset(card, tmp_path / dataset)
    assert content_hash(tmp_path / dataset) == published_hash(dataset), (
        f"{dataset}: the generator no longer reproduces the published bytes; bump {card.path.name}'s version "
        "and republish its hash (and re-run the affected leaderboard entries)"
    )
