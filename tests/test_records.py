"""Record readers: CSV and JSON Lines, line numbers, one readline at a time."""

import io
import os
import threading

import pytest

from streamrnn.records import Reader, RecordError


def records(data, **kw):
    return [(n, r if isinstance(r, dict) else str(r)) for n, r in Reader(io.BytesIO(data), **kw)]


def test_csv_quoted_fields_crlf_bom_and_blank_lines():
    data = b'\xef\xbb\xbfid,text\r\n1,"a, b"\r\n\r\n2,"say ""hi"""\r\n3,"two\nlines"\n4,x\n'
    assert records(data) == [
        (2, {"id": "1", "text": "a, b"}),
        (4, {"id": "2", "text": 'say "hi"'}),
        (5, {"id": "3", "text": "two\nlines"}),
        (7, {"id": "4", "text": "x"}),
    ]


def test_bad_lines_are_errors_with_their_line_numbers_and_reading_goes_on():
    data = b'a,b\n1,2\n\xff\xfe,3\n1,2,3\n"open,4\n'
    out = records(data, name="f.csv")
    assert out[0] == (2, {"a": "1", "b": "2"})
    assert out[1][0] == 3 and "f.csv, line 3: not UTF-8 text" in out[1][1]
    assert out[2] == (4, "f.csv, line 4: 3 fields where the header has 2")
    assert out[3] == (5, "f.csv, line 5: a quoted field is not closed before the end of the input")


def test_format_from_extension_or_first_line_and_tab_detection():
    assert Reader(io.BytesIO(b'{"a": 1}\n')).format == "jsonl"
    assert Reader(io.BytesIO(b"a,b\n")).format == "csv"
    assert Reader(io.BytesIO(b"a,b\n"), name="x.jsonl").format == "jsonl"
    r = Reader(io.BytesIO(b"a\tb\n1\t2\n"))
    assert r.format == "csv" and r.delimiter == "\t" and list(r) == [(2, {"a": "1", "b": "2"})]
    assert records(b"a;b\n1;2\n", delimiter=";") == [(2, {"a": "1", "b": "2"})]
    with pytest.raises(ValueError, match="format must be one of"):
        Reader(io.BytesIO(b""), fmt="xml")


def test_jsonl_errors_name_the_line():
    out = records(b'{"a": 1}\n\n{"a": \n"text"\n{"a": 2}\n')
    assert out[0] == (1, {"a": 1})
    assert out[1][0] == 3 and out[1][1].startswith("<input>, line 3: not valid JSON")
    assert out[2] == (4, "<input>, line 4: a JSON object was expected, got str")
    assert out[3] == (5, {"a": 2})


@pytest.mark.parametrize("header, message", [(b"a,,b\n", "empty column name"), (b"a,b,a\n", "'a' twice")])
def test_unusable_csv_header_raises(header, message):
    with pytest.raises(RecordError, match=message):
        list(Reader(io.BytesIO(header + b"1,2,3\n")))


def test_a_record_is_handed_over_before_the_next_line_exists():
    """Over a real pipe, the reader yields a record while the writer still holds the pipe open."""
    r_fd, w_fd = os.pipe()
    reader_file = os.fdopen(r_fd, "rb")
    writer = os.fdopen(w_fd, "wb")
    got = []
    arrived = threading.Event()

    def consume():
        for item in Reader(reader_file, fmt="jsonl"):
            got.append(item)
            arrived.set()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    for i in range(3):
        arrived.clear()
        writer.write(b'{"i": %d}\n' % i)
        writer.flush()
        assert arrived.wait(timeout=30), f"record {i} was not handed over while the pipe stayed open"
        assert got[-1] == (i + 1, {"i": i})
    writer.close()
    t.join(timeout=30)
    reader_file.close()
    assert len(got) == 3
