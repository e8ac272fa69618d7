"""Records from CSV or JSON Lines, read line by line, each with its line number.

Lines are read with ``readline`` as they arrive, never ahead: on a pipe, a record is
handed over as soon as its line is complete, whatever comes after it. A record that
cannot be parsed is handed over as a ``RecordError`` naming its line, so the caller
decides whether to skip it or stop.

CSV: the first non-blank line is the header (column names); each later non-blank line is
one record, a dict from column name to the field's text. Quoted fields may hold the
delimiter, doubled quotes and line breaks (RFC 4180). JSON Lines: each non-blank line is
one JSON object. Input is UTF-8 (a byte-order mark is ignored).

Examples
--------
>>> import io
>>> data = io.BytesIO(b'city,temp\\nOslo,3.5\\n\\n"Rome, IT",18\\nParis\\n')
>>> for lineno, rec in Reader(data, name="cities.csv"):
...     print(lineno, rec)
2 {'city': 'Oslo', 'temp': '3.5'}
4 {'city': 'Rome, IT', 'temp': '18'}
5 cities.csv, line 5: 1 field where the header has 2
>>> reader = Reader(io.BytesIO(b'{"a": 1, "b": null}\\n[1, 2]\\n'))
>>> reader.format, [str(r) for _, r in reader]
('jsonl', ["{'a': 1, 'b': None}", '<input>, line 2: a JSON object was expected, got list'])
"""

import codecs
import csv
import json

FORMATS = ("csv", "jsonl")
_EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


class RecordError(ValueError):
    """A record that cannot be used; ``lineno`` is its first line in the input (1-based)."""

    def __init__(self, message, lineno, name="<input>"):
        super().__init__(f"{name}, line {lineno}: {message}")
        self.lineno = lineno
        self.reason = message


def format_of(name):
    """``"csv"`` or ``"jsonl"`` from a file name's extension, or None if it does not tell."""
    name = str(name).lower()
    for ext, fmt in _EXTENSIONS.items():
        if name.endswith(ext):
            return fmt
    return None


class Reader:
    """Iterate ``(lineno, record)`` over a binary file object, one ``readline`` at a time.

    ``record`` is a dict, or a ``RecordError`` for a line that cannot be parsed.
    ``fmt`` is ``"csv"``, ``"jsonl"`` or None (from ``name``'s extension, else from the
    first non-blank line). ``delimiter`` is the CSV field separator (default ``,``; ``\\t``
    for a ``.tsv`` name). ``columns`` holds the CSV header once it is read. A header that
    cannot be used (empty or repeated names) raises ``RecordError`` from the iteration.
    """

    def __init__(self, stream, fmt=None, delimiter=None, name="<input>"):
        if fmt is not None and fmt not in FORMATS:
            raise ValueError(f"format must be one of {list(FORMATS)}, got {fmt!r}")
        self.stream = stream
        self.name = name
        self.lineno = 0
        self.columns = None
        self._pending = None
        self._decoder_bom = True
        if fmt is None:
            fmt = format_of(name)
        if delimiter is None:
            delimiter = "\t" if str(name).lower().endswith(".tsv") else ","
        if len(delimiter) != 1:
            raise ValueError(f"delimiter must be one character, got {delimiter!r}")
        self.delimiter = delimiter
        self.format = fmt
        if self.format is None:
            self._detect()

    # ------------------------------------------------------------------ lines
    def _readline(self):
        """The next line as text without its line break, or None at the end of the input."""
        raw = self.stream.readline()
        if not raw:
            return None
        self.lineno += 1
        if self._decoder_bom:
            self._decoder_bom = False
            if raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return RecordError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", self.lineno, self.name)
        return text.rstrip("\r\n")

    def _next_line(self):
        if self._pending is not None:
            line, self._pending = self._pending, None
            return line
        return self._readline()

    def _detect(self):
        """Peek at the first non-blank line to choose the format (the line is kept for iteration)."""
        while True:
            line = self._readline()
            if line is None:
                self.format = "csv"
                return
            if isinstance(line, RecordError) or line.strip():
                self._pending = line
                self.format = "jsonl" if not isinstance(line, RecordError) and line.lstrip().startswith("{") else "csv"
                if self.format == "csv" and not isinstance(line, RecordError) and "\t" in line and "," not in line:
                    self.delimiter = "\t"
                return

    # ------------------------------------------------------------------ records
    def __iter__(self):
        return self._jsonl() if self.format == "jsonl" else self._csv()

    def _jsonl(self):
        while True:
            line = self._next_line()
            if line is None:
                return
            lineno = self.lineno
            if isinstance(line, RecordError):
                yield lineno, line
                continue
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as exc:
                yield lineno, RecordError(f"not valid JSON ({exc})", lineno, self.name)
                continue
            if not isinstance(rec, dict):
                yield lineno, RecordError(
                    f"a JSON object was expected, got {type(rec).__name__}", lineno, self.name
                )
                continue
            yield lineno, rec

    def _fields(self, line):
        """Split one CSV record (more lines are read while a quoted field is open)."""
        start = self.lineno
        while line.count('"') % 2:  # an open quoted field: the record goes on
            more = self._readline()
            if more is None:
                raise RecordError("a quoted field is not closed before the end of the input", start, self.name)
            if isinstance(more, RecordError):
                raise more
            line += "\n" + more
        try:
            rows = list(csv.reader([line], delimiter=self.delimiter, strict=True))
        except csv.Error as exc:
            raise RecordError(f"not valid CSV ({exc})", start, self.name) from None
        return rows[0] if rows else []

    def _csv(self):
        while self.columns is None:
            line = self._next_line()
            if line is None:
                return
            if isinstance(line, RecordError):
                raise line
            if not line.strip():
                continue
            header = [c.strip() for c in self._fields(line)]
            if any(not c for c in header):
                raise RecordError(f"the header has an empty column name: {header}", self.lineno, self.name)
            seen = set()
            for c in header:
                if c in seen:
                    raise RecordError(f"the header names column {c!r} twice", self.lineno, self.name)
                seen.add(c)
            self.columns = header
        width = len(self.columns)
        while True:
            line = self._next_line()
            if line is None:
                return
            lineno = self.lineno
            if isinstance(line, RecordError):
                yield lineno, line
                continue
            if not line.strip():
                continue
            try:
                fields = self._fields(line)
            except RecordError as exc:
                yield exc.lineno, exc
                continue
            if len(fields) != width:
                yield lineno, RecordError(
                    f"{len(fields)} field{'s' if len(fields) != 1 else ''} where the header has {width}",
                    lineno,
                    self.name,
                )
                continue
            yield lineno, dict(zip(self.columns, fields))
