"""The one CSV writer: a file parsed back with the csv module gives the values unchanged, and a
cell a spreadsheet would run as a formula arrives as text."""

import csv
import io
import types

import pytest

from storefront import csv_export


def parse(text):
    assert text.startswith(csv_export.BOM)
    return list(csv.reader(io.StringIO(text[1:], newline="")))


def test_awkward_values_parse_back_unchanged():
    names = ["Dupont, Jean", 'O"Brien "the quote"', "line one\nline two", "Łukasz Żółć", "山田 太郎", ""]
    rows = parse(csv_export.render(["Name"], [[n] for n in names]))
    assert rows == [["Name"]] + [[n] for n in names]


@pytest.mark.parametrize("first", ["=", "+", "-", "@", "\t", "\r"])
def test_each_dangerous_first_character_is_neutralised(first):
    value = first + 'HYPERLINK("http://evil.example","x")'
    rows = parse(csv_export.render(["Name"], [[value]]))
    assert rows[1] == ["'" + value]


def test_harmless_and_empty_cells_untouched():
    assert csv_export.cell("Anna-Lena") == "Anna-Lena"
    assert csv_export.cell(None) == ""
    assert csv_export.cell(12) == "12"


def test_stream_is_a_lazy_generator():
    pulled = []

    def rows():
        for i in range(3):
            pulled.append(i)
            yield [i]

    lines = csv_export.stream(["n"], rows())
    assert isinstance(lines, types.GeneratorType)
    assert pulled == []
    next(lines)  # header
    assert pulled == []
    next(lines)
    assert pulled == [0]
