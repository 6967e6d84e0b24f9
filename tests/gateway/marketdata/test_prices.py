"""PriceTexts: cached price strings, negated bid keys, bounded size."""

from __future__ import annotations

from engine.instruments import Instrument
from gateway.marketdata.prices import PriceTexts

INST = Instrument.define(symbol="X", tick="0.5", lot=1)


def test_price_texts_cache_and_bound() -> None:
    texts = PriceTexts(INST.price_text, limit=4)
    assert texts[3] == "1.5" and texts[3] == "1.5" and len(texts) == 1
    bids = PriceTexts(INST.price_text, sign=-1)
    assert bids[-3] == "1.5"
    for k in range(10):
        assert texts[k] == INST.price_text(k)
    assert len(texts) <= 4
