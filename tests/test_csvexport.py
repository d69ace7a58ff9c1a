"""The shared CSV helper neutralises spreadsheet formulas in text and leaves numbers numbers."""

from __future__ import annotations

from decimal import Decimal

from csms.csvexport import csv_text, safe_cell
from csms.testing import FORMULA_PAYLOADS, csv_rows, formula_cells


def test_text_starting_a_formula_gets_a_leading_quote():
    for payload in FORMULA_PAYLOADS:
        assert safe_cell(payload) == "'" + payload
    assert safe_cell("-3.5") == "'-3.5"  # text is text, even when it looks like a number
    for harmless in ("CARD-0042", "Dana Driver", "", "a=b", " =1"):
        assert safe_cell(harmless) == harmless


def test_numbers_stay_numbers():
    assert safe_cell(-3) == -3 and safe_cell(-3.5) == -3.5
    assert safe_cell(Decimal("-12.30")) == "-12.30"
    assert safe_cell(Decimal(0).scaleb(-2)) == "0.00"  # never 0E-2
    assert safe_cell(None) == ""


def test_csv_text_writes_every_cell_safely():
    text = csv_text([["id", "name", "amount"], *[[i, p, Decimal("-2.50")] for i, p in enumerate(FORMULA_PAYLOADS)]])
    assert formula_cells(text) == []
    rows = csv_rows(text)
    assert [r[1] for r in rows[1:]] == ["'" + p for p in FORMULA_PAYLOADS]
    assert {r[2] for r in rows[1:]} == {"-2.50"}


def test_a_line_break_inside_a_cell_never_starts_a_row():
    text = csv_text([["a", "b"], ["x\r=1", "y\n=2"]])
    assert csv_rows(text) == [["a", "b"], ["x\r=1", "y\n=2"]] and formula_cells(text) == []
