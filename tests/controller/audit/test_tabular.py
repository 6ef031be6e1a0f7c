"""Reading CSV/XLSX files: a damaged file is a clear 'unreadable' error, never an exception out of the reader."""

from __future__ import annotations

import pytest

from controller.audit.tabular import TableError, read_table


def test_a_lone_carriage_return_is_a_line_break_not_a_crash():
    # The body schemathesis found: once a 500, now a table whose header is '&'.
    table = read_table("upload.csv", b"&\r\xf3\xa8\x8b\xbd6\xc2\x9d")
    assert table.columns == ["&"] and len(table.rows) == 1


@pytest.mark.parametrize(("data", "detail"), [(b"\xff\xfe\xfa", "not UTF-8"),
                                              (b"school\n" + b"x" * 200_000 + b"\n", "field larger than field limit")])
def test_unreadable_csv_is_a_clear_error(data, detail):
    with pytest.raises(TableError) as caught:
        read_table("upload.csv", data)
    assert caught.value.code == "unreadable" and detail in caught.value.values["detail"]


def test_line_breaks_inside_quoted_cells_and_lone_carriage_returns_are_read():
    table = read_table("upload.csv", b'school,name\r\ns1,"Tr\xc6\xb0\xe1\xbb\x9dng\nA"\rs2,B\r')
    assert [cells for _, cells in table.rows] == [{"school": "s1", "name": "Trường\nA"},
                                                   {"school": "s2", "name": "B"}]


def test_a_damaged_xlsx_is_an_unreadable_error():
    with pytest.raises(TableError) as caught:
        read_table("upload.xlsx", b"PK\x03\x04 not really a zip")
    assert caught.value.code == "unreadable"
