from __future__ import annotations

from engine.admin import build_instrument, deposit_units
from engine.commands import (
    DefineInstrument,
    Deposit,
)
from engine.instruments import Instrument
from tests.engine.harness import Harness, reasons


def test_deposits_and_instruments(harness: Harness) -> None:
    h = harness
    assert h.submit(Deposit("c", "USD", "12.345")) == []
    assert h.balance("c", "USD") == (1_234_500_000, 0)
    assert reasons(h.submit(Deposit("c", "USD", "-1"))) == ["bad_qty"]
    assert reasons(h.submit(Deposit("c", "ACME", "5"))) == ["bad_qty"]
    assert reasons(h.submit(Deposit("c", "ACME", 0))) == ["bad_qty"]
    assert reasons(h.submit(Deposit("c", "XYZ", 5))) == ["unknown_symbol"]
    assert h.submit(DefineInstrument("ACME", "0.01", 1)) == []  # same again: fine
    assert reasons(h.submit(DefineInstrument("ACME", "0.05", 1))) == ["malformed"]
    assert reasons(h.submit(DefineInstrument("BAD", "0", 1))) == ["bad_price"]
    assert reasons(h.submit(DefineInstrument("BAD", "0.01", 0))) == ["bad_qty"]
    assert reasons(h.submit(DefineInstrument("BAD", "0.01", 1, band="x"))) == ["malformed"]
    assert reasons(h.submit(DefineInstrument("USD", "0.01", 1))) == ["malformed"]
    assert h.submit(DefineInstrument("EUX", "0.5", 10, currency="EUR")) == []
    assert h.submit(Deposit("c", "EUR", "100")) == []
    assert h.engine.instruments["EUX"].currency == "EUR"
    assert h.engine.symbols() == ["ACME", "EUX"]


def reason(found: object) -> str:
    assert isinstance(found, tuple)
    return str(found[0])


def test_build_instrument_directly() -> None:
    inst = build_instrument(DefineInstrument("Z", "0.25", 5, max_notional="10.5"), {}, {"USD"})
    assert isinstance(inst, Instrument)
    assert (inst.tick_units, inst.price_decimals, inst.max_notional) == (25, 2, 1_050_000_000)
    assert reason(build_instrument(DefineInstrument("Z", "-1", 5), {}, {"USD"})) == "bad_price"
    assert (
        reason(build_instrument(DefineInstrument("Z", "1", 1, max_qty=0), {}, {"USD"})) == "bad_qty"
    )
    bad = build_instrument(DefineInstrument("Z", "1", 1, max_notional="0"), {}, {"USD"})
    assert reason(bad) == "bad_price"
    # a currency that is already a symbol
    clash = build_instrument(DefineInstrument("Q", "1", 1, currency="Z"), {"Z": inst}, {"USD"})
    assert reason(clash) == "malformed"


def test_deposit_units_directly() -> None:
    inst = Instrument.define(symbol="Z", tick="1", lot=1)
    known = {"Z": inst}
    assert deposit_units(Deposit("a", "USD", "0.00000001"), known, {"USD"}) == 1
    assert deposit_units(Deposit("a", "USD", 2), known, {"USD"}) == 2 * 10**8
    assert deposit_units(Deposit("a", "Z", 7), known, {"USD"}) == 7
    assert deposit_units(Deposit("a", "USD", "0.000000001"), known, {"USD"}) == (
        "bad_qty",
        "bad cash amount '0.000000001'",
    )
    assert reason(deposit_units(Deposit("", "USD", "1"), known, {"USD"})) == "malformed"
    assert reason(deposit_units(Deposit("a", "EUR", "1"), known, {"USD"})) == "unknown_symbol"
