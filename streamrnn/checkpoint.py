"""Checkpoints: one ``.npz`` file of named arrays plus a JSON header, written atomically.

This is the contract of DESIGN section 6. ``StreamRNN.save``/``StreamRNN.load`` use it,
and so can any object whose state is "a kind, a JSON config, named arrays and JSON
metadata": ``write`` and ``read`` know nothing about models; ``engine_arrays``,
``construct`` and ``restore_engine`` add what every engine built on ``kernels.layout``
needs.

File format, version 2
----------------------
A zip archive of uncompressed ``.npy`` members, so ``numpy.load(path,
allow_pickle=False)`` opens it:

``__header__.npy``
    a 0-d unicode array holding one JSON object (``print(np.load(path, allow_pickle=False)["__header__"])``
    shows it)::

        {"format": "streamrnn-checkpoint", "format_version": 2,
         "library_version": "0.2.0", "kind": "StreamRNN",
         "config": {...the constructor arguments...},
         "extra": {...free JSON metadata...},
         "arrays": {"<name>": {"dtype": "<f8", "shape": [n, ...]}, ...},
         "checksum": "sha256:<64 hex digits>"}

``<name>.npy``
    one member per entry of ``"arrays"``, of exactly that dtype and shape. Only bool,
    integer, float and unicode dtypes are allowed (never object arrays).

The checksum is the SHA-256 of the header's canonical JSON without its ``checksum`` key
(``json.dumps(..., sort_keys=True, separators=(",", ":"))``), followed by the bytes of
every array in C order, arrays taken in sorted name order. Every member's zip CRC-32 is
checked too. Member timestamps are fixed, so one state always writes the same bytes.

Reading never unpickles anything: each member's ``.npy`` header is parsed by numpy's
header reader, checked against the JSON header (any dtype but bool, integer, float or
unicode, objects above all, is refused before any of its data is read), and its bytes
are copied into a fresh array. Any problem raises ``CheckpointError`` saying what is
wrong; a missing file raises ``FileNotFoundError``.

A ``StreamRNN`` checkpoint has kind ``"StreamRNN"``, its constructor arguments as
config, and the five arrays that define it (``kernels.layout``): ``meta`` (sizes,
offsets, counters), ``fmeta`` (hyper-parameters, statistics, history), ``mem`` (weights,
optimizer moments, last gradient, transposed weights), ``slab`` (h, and c for an LSTM,
the window start states and the ring buffer of inputs, targets and target flags) and
``counts`` (steps, hence the ring position). Loading rebuilds the model from the config,
checks every array against the rebuilt one (dtype, shape, configuration entries, counter
ranges, finite values), then copies them in. Version 1 (streamrnn 0.1.0) differs only
in ``meta``, which lacked its last entries (work offsets derived from the config); they
are recomputed on loading, so version-1 files and states still load. Other objects
store their own config, extra metadata (feature names, class labels...) and arrays next
to an engine's, whose names ``engine_arrays(model, prefix)`` prefixes.

Writing goes to a temporary file in the target's directory, which is flushed and
fsynced, then renamed over the target (an atomic replace), and the directory is fsynced
where the platform allows. An exception during ``write`` removes the temporary file and
leaves any previous checkpoint untouched; only a hard kill of the process can leave a
``.<name>.<random>.tmp`` file behind, which is safe to delete.

Examples
--------
>>> import os, tempfile
>>> import numpy as np
>>> from streamrnn import checkpoint
>>> tmp = tempfile.TemporaryDirectory()
>>> path = os.path.join(tmp.name, "table.npz")
>>> _ = checkpoint.write(path, "Table", {"rows": 2}, {"values": np.arange(4.0).reshape(2, 2)},
...                      extra={"names": ["a", "b"]})
>>> ck = checkpoint.read(path, kind="Table")
>>> ck.config, ck.extra, ck.arrays["values"].tolist()
({'rows': 2}, {'names': ['a', 'b']}, [[0.0, 1.0], [2.0, 3.0]])
>>> try:
...     checkpoint.read(path, kind="StreamRNN")
... except checkpoint.CheckpointError as exc:
...     print(str(exc).replace(path, "<path>"))
<path>: a checkpoint of kind 'Table', expected 'StreamRNN'
>>> tmp.cleanup()
"""

import contextlib
import hashlib
import inspect
import io
import json
import math
import os
import re
import secrets
import struct
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from ._version import __version__
from .kernels import layout as L
from .kernels.tbptt import refresh_transposed

FORMAT = "streamrnn-checkpoint"
FORMAT_VERSION = 2
# versions this reader reads: 1 (streamrnn 0.1.0) lacks meta's last entries, derived work
# offsets that ``restore_engine`` recomputes (``cells.Layout.upgrade_meta``)
READ_VERSIONS = (1, 2)
HEADER = "__header__"

_NAME = re.compile(r"^(?!__)[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")
_KINDS = "biufU"  # bool, int, uint, float, unicode
_ZIP_MAGIC = b"PK\x03\x04"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # _ZIP_TIME as a zip header's date field (time 0)
_ZIP64_FROM = 0xFFFFFFFF  # archives this large (in bytes) need zip64 records
_NPY_WRITE = {}  # (dtype, shape) -> .npy header bytes
_NPY_READ = {}  # .npy header bytes -> (dtype, shape)


class CheckpointError(ValueError):
    """A file is not a readable streamrnn checkpoint, or not the one that was expected.

    Raised for a truncated or corrupted file, a checksum mismatch, an unknown format
    version, a checkpoint of another kind, a configuration other than the expected one,
    arrays that do not fit the stored configuration, or a file that is not a streamrnn
    checkpoint at all. The message names the file and what is wrong.
    """


@dataclass(frozen=True)
class Checkpoint:
    """What ``read`` returns: the header's fields and the arrays, by name."""

    kind: str
    config: dict
    arrays: dict
    extra: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    library_version: str = __version__


# ---------------------------------------------------------------------------- hashing
def _canonical(body):
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _as_bytes(arr):
    """A uint8 view of a C-contiguous array's bytes (no copy)."""
    return np.ascontiguousarray(arr).reshape(-1).view(np.uint8)


def _digest(body, arrays):
    h = hashlib.sha256(_canonical(body).encode("ascii"))
    for name in sorted(arrays):
        h.update(_as_bytes(arrays[name]))
    return "sha256:" + h.hexdigest()


def _check_dtype(dtype):
    """None if ``dtype`` may be stored, else the reason it may not."""
    if dtype.hasobject:
        return "dtype object (loading it would need pickle)"
    if dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in _KINDS:
        return f"dtype {dtype} (only bool, integer, float and unicode arrays are stored)"
    if dtype.itemsize == 0:
        return f"dtype {dtype} of size zero"
    return None


# ---------------------------------------------------------------------------- writing
def write(path, kind, config, arrays, extra=None):
    """Write a checkpoint atomically; return ``path``.

    ``kind`` names what the file holds (e.g. ``"StreamRNN"``); ``config`` and ``extra``
    are JSON objects (dicts of str keys; numbers must be finite: keep float data in
    arrays); ``arrays`` maps names (letters, digits, ``_.-``, not starting with ``__``)
    to bool, integer, float or unicode arrays. Raises TypeError or ValueError, before
    touching the disk, for anything that cannot be stored.
    """
    text, staged = _stage(kind, config, arrays, extra)
    _atomic_write(path, lambda f: _write_members(f, text, staged))
    return path


def dumps(kind, config, arrays, extra=None):
    """The bytes ``write`` puts in a file, as a value (for a state store: Flink's keyed
    state, a database column, a message). ``loads`` reads them back.

    >>> import numpy as np
    >>> data = dumps("Table", {"rows": 1}, {"values": np.ones(2)})
    >>> data[:4], loads(data, kind="Table").arrays["values"].tolist()
    (b'PK\\x03\\x04', [1.0, 1.0])
    """
    text, staged = _stage(kind, config, arrays, extra)
    buf = io.BytesIO()
    _write_members(buf, text, staged)
    return buf.getvalue()


def _stage(kind, config, arrays, extra):
    """Validate what ``write``/``dumps`` were given; return the header array and the arrays."""
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"kind must be a non-empty str, got {kind!r}")
    extra = {} if extra is None else extra
    for label, obj in (("config", config), ("extra", extra)):
        if not isinstance(obj, dict):
            raise TypeError(f"{label} must be a dict, got {type(obj).__name__}")
    if not isinstance(arrays, dict):
        raise TypeError(f"arrays must be a dict of name -> array, got {type(arrays).__name__}")
    staged = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"array name {name!r} must match {_NAME.pattern}")
        arr = np.asarray(value, order="C")  # keeps 0-d arrays 0-d
        why = _check_dtype(arr.dtype)
        if why:
            raise TypeError(f"arrays[{name!r}] has {why}")
        staged[name] = arr
    body = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "kind": kind,
        "config": config,
        "extra": extra,
        "arrays": {n: {"dtype": a.dtype.str, "shape": list(a.shape)} for n, a in staged.items()},
    }
    try:
        text = _canonical(body)
    except (TypeError, ValueError) as exc:
        label = "config"
        try:
            _canonical(config)
        except (TypeError, ValueError):
            pass
        else:
            label = "extra"
        raise type(exc)(f"{label} must be JSON data with finite numbers: {exc}") from None
    body = json.loads(text)  # exactly what a reader will see (tuples -> lists, keys -> str...)
    header = dict(body, checksum=_digest(body, staged))  # so hashed as a reader will hash it
    return np.array(json.dumps(header, sort_keys=True, ensure_ascii=False)), staged


def _write_members(f, text, staged):
    """The zip archive: the header member, then one stored ``.npy`` member per array.

    Written directly (zipfile's per-member machinery costs more than the data of a small
    model: 195 against 30 us), with fixed timestamps, so one state is always the same
    bytes; array data goes to ``f`` without a copy. An archive that needs zip64 records
    (4 GiB and more, or 65,535 members and more) is written through zipfile instead.
    """
    members = [(name + ".npy", _npy_header(arr), arr) for name, arr in ((HEADER, text), *staged.items())]
    size = 22 + sum(76 + 2 * len(fname.encode()) + len(head) + arr.nbytes for fname, head, arr in members)
    if size >= _ZIP64_FROM or len(members) >= 0xFFFF:
        with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED) as zf:
            for fname, head, arr in members:
                info = zipfile.ZipInfo(fname, date_time=_ZIP_TIME)
                info.external_attr = 0o644 << 16
                with zf.open(info, mode="w", force_zip64=True) as out:
                    out.write(head)  # the same member bytes as below
                    out.write(_as_bytes(arr))
        return
    central = []
    offset = 0
    for fname, head, arr in members:
        data = _as_bytes(arr)
        name = fname.encode()
        crc = zlib.crc32(data, zlib.crc32(head))
        size = len(head) + data.nbytes
        f.write(_local_header(name, crc, size))
        f.write(head)
        f.write(data)
        central.append(_central_entry(name, crc, size, offset))
        offset += 30 + len(name) + size
    f.write(_directory(central, offset))


def _local_header(name, crc, size):
    """A stored member's local header (version 2.0 needed, no flags, the fixed date), with its name."""
    return struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, _DOS_DATE, crc, size, size, len(name), 0) + name


def _central_entry(name, crc, size, offset):
    """The central directory's entry for a member ``_local_header`` wrote at ``offset`` (made on
    Unix, mode 0644, as zipfile writes it)."""
    return struct.pack(
        "<4s6H3L5H2L", b"PK\x01\x02", (3 << 8) | 20, 20, 0, 0, 0, _DOS_DATE, crc, size, size, len(name),
        0, 0, 0, 0, 0o644 << 16, offset,
    ) + name


def _directory(central, offset):
    """The central directory of ``central`` entries starting at ``offset``, and its end record."""
    entries = b"".join(central)
    return entries + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(central), len(central), len(entries), offset, 0)


def _npy_header(arr):
    """The ``.npy`` (version 1.0) header ``np.save`` writes for ``arr``, cached by dtype and shape."""
    key = (arr.dtype.str, arr.shape)
    head = _NPY_WRITE.get(key)
    if head is None:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(arr))
        head = buf.getvalue()
        if len(_NPY_WRITE) < 4096:
            _NPY_WRITE[key] = head
    return head


def _atomic_write(path, fill):
    """Call ``fill(file)`` on a temporary file next to ``path``, fsync it, rename it over ``path``."""
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    stem = os.path.basename(target)[:200]
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(directory, f".{stem}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:  # pragma: no cover - a 48-bit name collision
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make the rename durable where directories can be fsynced (POSIX); else do nothing."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- reading
def read(path, kind=None):
    """Read and verify a checkpoint; return a ``Checkpoint``.

    ``path`` is a file name or a seekable binary file object (read from its start).
    With ``kind`` given, a checkpoint of another kind is refused. Raises
    ``FileNotFoundError`` if ``path`` does not exist and ``CheckpointError`` for
    everything else that is wrong with the file (see the module docstring).
    """
    where = describe(path)
    if hasattr(path, "read"):
        path.seek(0)
        return _read_file(path, where, kind)
    with open(path, "rb") as f:
        return _read_file(f, where, kind)


def loads(data, kind=None, what="checkpoint bytes"):
    """Read and verify checkpoint bytes (from ``dumps``, or a file's content), as ``read``
    does a file; errors name the value ``what``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes, got {type(data).__name__}")
    data = bytes(data)  # (no copy when it is bytes already)
    members = _read_plain(data)
    if members is None:  # not laid out as written here: the general reader decides
        return _read_file(io.BytesIO(data), what, kind)
    header = _header_of(members.pop(HEADER), what, kind)
    _check_members({n + ".npy" for n in members}, header["arrays"], what)
    for name, arr in members.items():
        _check_spec(name, arr.dtype, arr.shape, header["arrays"][name], what)
    return _verified(header, members, what)


def _read_plain(data):
    """``{name: array}`` of an archive laid out exactly as ``_write_members`` writes it
    (members stored, CRCs right, the central directory and its end record byte for byte
    those the writer would make, every member a C-order ``.npy`` of an allowed dtype), or
    None for anything else (the general reader then decides)."""
    view = memoryview(data)
    arrays, central = {}, []
    pos = 0
    while data[pos : pos + 4] == b"PK\x03\x04" and pos + 30 <= len(data):
        crc, size, _, nlen, _ = struct.unpack_from("<3L2H", data, pos + 14)
        name = bytes(view[pos + 30 : pos + 30 + nlen])
        start = pos + 30 + nlen
        body = view[start : start + size]
        if data[pos : start] != _local_header(name, crc, size) or len(body) != size or zlib.crc32(body) != crc:
            return None
        if not name.endswith(b".npy") or not name.isascii():
            return None
        arr = _npy_array(body)
        key = name[:-4].decode("ascii")
        if arr is None or key in arrays:
            return None
        arrays[key] = arr
        central.append(_central_entry(name, crc, size, pos))
        pos = start + size
    if HEADER not in arrays or data[pos:] != _directory(central, pos):
        return None
    return arrays


def _npy_array(body):
    """The array in ``.npy`` bytes (a memoryview), or None unless it is a C-order array of
    an allowed dtype whose data fills the rest exactly. A header seen before is looked up
    rather than parsed again (numpy parses it with ``ast.literal_eval``, the slow part)."""
    if len(body) < 10 or body[:8] != b"\x93NUMPY\x01\x00":
        return None
    head = bytes(body[: 10 + struct.unpack_from("<H", body, 8)[0]])
    meta = _NPY_READ.get(head)
    if meta is None:
        try:
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(io.BytesIO(head[8:]))
        except (ValueError, OSError, EOFError, SyntaxError):
            return None
        if fortran or _check_dtype(dtype) or any(n < 0 for n in shape):
            return None
        meta = (dtype, shape)
        if len(head) <= 256 and len(_NPY_READ) < 1024:  # headers of our arrays are ~128 bytes
            _NPY_READ[head] = meta
    dtype, shape = meta
    count = math.prod(shape)
    if len(body) - len(head) != count * dtype.itemsize:
        return None
    return np.frombuffer(body, dtype=dtype, count=count, offset=len(head)).reshape(shape).copy()


def describe(path):
    """How error messages name ``path``: the file name, or a file object's ``name``."""
    if hasattr(path, "read"):
        return str(getattr(path, "name", "<file object>"))
    return os.fspath(path)


def _read_file(f, where, kind):
    magic = f.read(len(_ZIP_MAGIC))
    if not magic:
        raise CheckpointError(f"{where}: not a streamrnn checkpoint: the file is empty")
    if magic != _ZIP_MAGIC:
        raise CheckpointError(f"{where}: not a streamrnn checkpoint: not an .npz (zip) file")
    f.seek(0)
    try:
        return _read_zip(f, where, kind)
    except CheckpointError:
        raise
    except Exception as exc:  # whatever a damaged zip makes zipfile or numpy raise
        raise CheckpointError(f"{where}: truncated or corrupted checkpoint ({type(exc).__name__}: {exc})") from exc


def _read_zip(f, where, kind):
    with zipfile.ZipFile(f, mode="r") as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise CheckpointError(f"{where}: corrupted checkpoint: duplicate members")
        f.seek(0, os.SEEK_END)
        size = f.tell()
        for i in infos:  # sizes are trusted below to allocate arrays: bound them by the file
            if i.compress_type != zipfile.ZIP_STORED or i.compress_size != i.file_size or i.file_size > size:
                raise CheckpointError(
                    f"{where}: corrupted checkpoint: member {i.filename!r} is compressed or its sizes "
                    f"({i.compress_size}, {i.file_size} bytes) do not fit the {size}-byte file"
                )
        by_name = {i.filename: i for i in infos}
        if HEADER + ".npy" not in by_name:
            raise CheckpointError(f"{where}: not a streamrnn checkpoint: an .npz without a streamrnn header")
        header = _header_of(_read_member(zf, by_name[HEADER + ".npy"], HEADER, where, None), where, kind)
        listed = header["arrays"]
        _check_members(set(names) - {HEADER + ".npy"}, listed, where)
        arrays = {n: _read_member(zf, by_name[n + ".npy"], n, where, spec) for n, spec in listed.items()}
    return _verified(header, arrays, where)


def _header_of(text, where, kind):
    """The parsed JSON header held by the header member ``text``, of ``kind`` if given."""
    if text.dtype.kind != "U" or text.shape != ():
        raise CheckpointError(f"{where}: not a streamrnn checkpoint: its header is not a JSON string")
    header = _parse_header(str(text), where)
    if kind is not None and header["kind"] != kind:
        raise CheckpointError(f"{where}: a checkpoint of kind {header['kind']!r}, expected {kind!r}")
    return header


def _check_members(members, listed, where):
    """The archive's members other than the header must be exactly one ``.npy`` per listed array."""
    expected = {n + ".npy" for n in listed}
    if members != expected:
        missing = sorted(expected - members)
        unexpected = sorted(members - expected)
        raise CheckpointError(
            f"{where}: corrupted checkpoint: members differ from the header "
            f"(missing {missing}, unexpected {unexpected})"
        )


def _check_spec(name, dtype, shape, spec, where):
    if dtype.str != spec["dtype"] or list(shape) != spec["shape"]:
        raise CheckpointError(
            f"{where}: corrupted checkpoint: array {name!r} is {dtype.str} {list(shape)}, "
            f"the header says {spec['dtype']} {spec['shape']}"
        )


def _verified(header, arrays, where):
    """The ``Checkpoint`` of a header and its arrays, once the checksum matches."""
    body = {k: v for k, v in header.items() if k != "checksum"}
    if _digest(body, arrays) != header["checksum"]:
        raise CheckpointError(f"{where}: checksum mismatch: the file was corrupted or modified")
    return Checkpoint(
        kind=header["kind"],
        config=header["config"],
        arrays=arrays,
        extra=header["extra"],
        format_version=header["format_version"],
        library_version=header["library_version"],
    )


def _parse_header(text, where):
    try:
        header = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"{where}: not a streamrnn checkpoint: unreadable header ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not a streamrnn checkpoint: its header has no format {FORMAT!r}")
    version = header.get("format_version")
    if version not in READ_VERSIONS or not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(
            f"{where}: unknown checkpoint format version {version!r} (written by streamrnn "
            f"{header.get('library_version')!r}; this streamrnn {__version__} reads versions "
            f"{', '.join(map(str, READ_VERSIONS))})"
        )
    types = {
        "library_version": str,
        "kind": str,
        "config": dict,
        "extra": dict,
        "arrays": dict,
        "checksum": str,
    }
    for key, typ in types.items():
        if not isinstance(header.get(key), typ):
            raise CheckpointError(f"{where}: malformed checkpoint header: {key!r} must be a {typ.__name__}")
    for name, spec in header["arrays"].items():
        ok = (
            _NAME.match(name)
            and isinstance(spec, dict)
            and set(spec) == {"dtype", "shape"}
            and isinstance(spec["dtype"], str)
            and isinstance(spec["shape"], list)
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in spec["shape"])
        )
        if not ok:
            raise CheckpointError(f"{where}: malformed checkpoint header: bad entry for array {name!r}")
    return header


def _read_member(zf, info, name, where, spec):
    """One ``.npy`` member as a fresh array, without pickle, checked against ``spec``."""
    with zf.open(info) as fp:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise CheckpointError(f"{where}: array {name!r} has unsupported .npy version {version}")
        why = _check_dtype(dtype)
        if why:
            raise CheckpointError(f"{where}: array {name!r} refused: it has {why}")
        if spec is not None:
            _check_spec(name, dtype, shape, spec, where)
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if nbytes > info.file_size:
            raise CheckpointError(f"{where}: corrupted checkpoint: array {name!r} is larger than its member")
        flat = np.empty(count, dtype=dtype)
        buf = memoryview(flat.view(np.uint8)) if count else memoryview(b"")
        got = 0
        while got < nbytes:
            n = fp.readinto(buf[got:])
            if not n:
                raise CheckpointError(f"{where}: truncated checkpoint: array {name!r} ends early")
            got += n
        if fp.read(1):  # also makes zipfile check the member's CRC-32
            raise CheckpointError(f"{where}: corrupted checkpoint: array {name!r} has trailing bytes")
    return flat.reshape(shape, order="F" if fortran else "C")


# ---------------------------------------------------------------------------- values
# Hashable values (feature names, labels, keys, constructor arguments) in JSON, tagged so
# that each comes back as exactly what it was: True stays a bool (not 1), "1" a str (not
# 1), 1.0 a float (not 1), (1, "a") a tuple (not a list).
_NUMPY_KINDS = "biufUS"
_ITEM_TYPES = {"U": (str,), "S": (bytes,)}  # what .item() gives (numbers for the other kinds)


def encode_value(value, what="value"):
    """A JSON form of ``value`` from which ``decode_value`` rebuilds an equal value of the same type.

    ``str`` is itself, ``None`` is null and ``bool`` is true/false (JSON tells these
    apart); everything else is a tagged list: ``["int", 3]``, ``["float", "1.5"]``
    (``repr``, so NaN, infinities and -0.0 are exact), ``["tuple", [...]]``,
    ``["bytes", "<hex>"]`` and ``["numpy", "<dtype>", <value>]`` for a numpy bool,
    integer, float, str or bytes scalar. Only these exact types are taken (not subclasses such as an
    ``enum`` member, which would come back as its base type); anything else raises
    TypeError naming ``what``.

    >>> encode_value(("a", 1, 1.0, True, None))
    ['tuple', ['a', ['int', 1], ['float', '1.0'], True, None]]
    >>> decode_value(encode_value(("a", 1, 1.0, True, None)))
    ('a', 1, 1.0, True, None)
    """
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is int:
        return ["int", value]
    if t is float:
        return ["float", repr(value)]
    if t is tuple:
        return ["tuple", [encode_value(v, what) for v in value]]
    if t is bytes:
        return ["bytes", value.hex()]
    if (
        isinstance(value, np.generic)
        and value.dtype.kind in _NUMPY_KINDS
        and (value.dtype.itemsize <= 8 or value.dtype.kind in "US")  # not longdouble: .item() is no Python number
        and t is value.dtype.type
    ):
        return ["numpy", value.dtype.str, encode_value(value.item(), what)]
    raise TypeError(
        f"{what} {value!r:.80} of type {t.__name__} cannot be stored in a checkpoint (storable: str, int, "
        "float, bool, None, bytes, numpy bool/int/float/str/bytes scalars and tuples of these)"
    )


def decode_value(obj, where="checkpoint"):
    """The value ``encode_value`` encoded as ``obj``; CheckpointError for anything malformed."""
    if obj is None or type(obj) is str or type(obj) is bool:
        return obj
    bad = CheckpointError(f"{where}: malformed value {obj!r:.80} in the checkpoint header")
    if type(obj) is not list or not obj or type(obj[0]) is not str:
        raise bad
    tag, args = obj[0], obj[1:]
    if tag == "int" and len(args) == 1 and type(args[0]) is int:
        return args[0]
    if tag == "float" and len(args) == 1 and type(args[0]) is str:
        try:
            return float(args[0])
        except ValueError:
            raise bad from None
    if tag == "tuple" and len(args) == 1 and type(args[0]) is list:
        return tuple(decode_value(v, where) for v in args[0])
    if tag == "bytes" and len(args) == 1 and type(args[0]) is str:
        try:
            return bytes.fromhex(args[0])
        except ValueError:
            raise bad from None
    if tag == "numpy" and len(args) == 2 and type(args[0]) is str:
        try:
            dtype = np.dtype(args[0])
        except TypeError:
            raise bad from None
        inner = decode_value(args[1], where)
        if (
            dtype.kind not in _NUMPY_KINDS
            or (dtype.itemsize > 8 and dtype.kind not in "US")
            or dtype.str != args[0]
            or type(inner) not in _ITEM_TYPES.get(dtype.kind, (bool, int, float))
        ):
            raise bad
        with np.errstate(all="ignore"):
            value = dtype.type(inner)
        if value.item() != inner and inner == inner:
            raise bad
        return value
    raise bad


# ---------------------------------------------------------------------------- engines
ENGINE_ARRAYS = ("meta", "fmeta", "mem", "slab", "counts")

# meta entries that are state (they change as the model learns); every other entry of
# meta is configuration and offsets, which must equal those of a freshly built model.
_META_STATE = (
    L.OPT_STEP,
    L.N_UPDATES,
    L.N_SKIPPED,
    L.N_CLIPPED,
    L.N_STEPS,
    L.HIST_POS,
    L.HIST_COUNT,
    L.N_NO_TARGET,
)
_META_CONFIG = np.setdiff1d(np.arange(L.META_SIZE), _META_STATE)
# fmeta entries that are configuration (hyper-parameters and the dtype's range).
_FMETA_CONFIG = (
    L.LR,
    L.MOMENTUM,
    L.DAMPENING,
    L.WEIGHT_DECAY,
    L.BETA1,
    L.BETA2,
    L.EPS,
    L.ALPHA,
    L.CLIP,
    L.EMA,
    L.FMAX,
    L.LR_END,
    L.LR_TAU,
)


def engine_arrays(model, prefix=""):
    """``{prefix + name: array}`` of the arrays that define an engine (no scratch, no copies).

    A ``prefix`` (e.g. ``"engine."``) lets one file hold an engine next to other arrays.
    """
    return {prefix + name: getattr(model, "_" + name) for name in ENGINE_ARRAYS}


def _same(stored, wanted):
    """Equal as configuration values: numbers by value, lists and tuples item by item."""
    if isinstance(stored, (list, tuple)) and isinstance(wanted, (list, tuple)):
        return len(stored) == len(wanted) and all(_same(a, b) for a, b in zip(stored, wanted))
    return stored == wanted


def construct(cls, config, expected, where):
    """Build ``cls(**config)`` after checking ``expected`` values against ``config``.

    ``expected`` holds constructor arguments the caller requires (e.g. ``cell="gru"``);
    an unknown name raises TypeError, a different value CheckpointError. Options
    missing from ``config`` (written before they existed) take their defaults; options
    this version does not know, or values the constructor refuses, raise CheckpointError.
    """
    params = inspect.signature(cls.__init__).parameters
    known = {n for n, p in params.items() if n != "self" and p.kind is not p.VAR_KEYWORD}
    unknown = sorted(set(expected) - known)
    if unknown:
        raise TypeError(f"{cls.__name__}.load() got unexpected keyword arguments {unknown}")
    foreign = sorted(set(config) - known)
    if foreign:
        raise CheckpointError(
            f"{where}: the checkpoint has options this {cls.__name__} does not know: {foreign} "
            f"(written by a newer streamrnn?)"
        )
    full = {n: params[n].default for n in known if params[n].default is not params[n].empty}
    full.update(config)
    for name, want in expected.items():
        have = stored = full.get(name)
        if name == "k2" and (want is None) != (have is None):  # None means k2 = k1
            want = expected.get("k1", full.get("k1")) if want is None else want
            have = full.get("k1") if have is None else have
        if not _same(have, want):
            raise CheckpointError(f"{where}: the checkpoint has {name}={stored!r}, expected {name}={expected[name]!r}")
    try:
        return cls(**config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: invalid configuration in checkpoint: {exc}") from None


def upgraded_meta(stored, own, layout):
    """A stored ``meta`` of format 1 (streamrnn 0.1.0: fewer entries, the new ones derived
    work offsets) laid out as ``own`` is, by ``layout.upgrade_meta``; anything else as it
    is, for the caller's shape check to name."""
    if stored.dtype == own.dtype and stored.shape[:-1] == own.shape[:-1] and stored.shape != own.shape:
        try:
            return layout.upgrade_meta(stored)
        except ValueError:
            pass
    return stored


def restore_engine(model, arrays, where, prefix=""):
    """Copy the stored engine arrays into ``model``, freshly built from the stored config.

    ``model`` is a ``StreamRNN`` or anything with the same arrays (``_meta``, ``_fmeta``,
    ``_mem``, ``_slab``, ``_counts``) and ``_alloc_work()``; ``arrays`` holds them under
    ``prefix + name``, as ``engine_arrays(model, prefix)`` gave them. Every array must
    have the dtype and shape of the model's own; the configuration part of ``meta`` and
    ``fmeta`` must equal the model's; counters must be in range and parameters,
    optimizer moments and stream rows finite. Otherwise CheckpointError ("a different
    cell or size" when shapes disagree), and the model is left as built.
    """
    arrays = {name: arrays.get(prefix + name) for name in ENGINE_ARRAYS}
    for name in ENGINE_ARRAYS:
        if arrays[name] is None:
            raise CheckpointError(f"{where}: the checkpoint has no array {prefix + name!r}")
        if name == "meta":
            arrays["meta"] = upgraded_meta(arrays["meta"], model._meta, model._layout)
        have, own = arrays[name], getattr(model, "_" + name)
        if have.dtype != own.dtype or have.shape != own.shape:
            raise CheckpointError(
                f"{where}: array {prefix + name!r} is {have.dtype} {have.shape}, but the stored configuration needs "
                f"{own.dtype} {own.shape} (a different cell or size)"
            )
    meta, fmeta = arrays["meta"], arrays["fmeta"]
    bad = _META_CONFIG[meta[_META_CONFIG] != model._meta[_META_CONFIG]]
    if bad.size:
        raise CheckpointError(f"{where}: array '{prefix}meta' disagrees with the stored configuration (entry {bad[0]})")
    hyper = np.asarray(_FMETA_CONFIG)
    bad = hyper[fmeta[hyper] != model._fmeta[hyper]]
    if bad.size:
        raise CheckpointError(
            f"{where}: array '{prefix}fmeta' disagrees with the stored configuration (entry {bad[0]})"
        )
    hist = int(model._meta[L.HIST])
    state = meta[np.asarray(_META_STATE)]
    if (
        np.any(state < 0)
        or meta[L.HIST_COUNT] > hist
        or (hist and meta[L.HIST_POS] >= hist)
        or (not hist and meta[L.HIST_POS] != 0)
        or np.any(arrays["counts"] < 0)
    ):
        raise CheckpointError(f"{where}: counters out of range in '{prefix}meta' or '{prefix}counts'")
    n_live = int(model._meta[L.OFF_MOM]) + int(model._meta[L.P]) * int(model._meta[L.N_MOM])
    if not np.all(np.isfinite(arrays["mem"][:n_live])):
        raise CheckpointError(f"{where}: non-finite parameters or optimizer moments in '{prefix}mem'")
    if not np.all(np.isfinite(arrays["slab"])):
        raise CheckpointError(f"{where}: non-finite stream state in '{prefix}slab'")
    for name in ENGINE_ARRAYS:
        getattr(model, "_" + name)[...] = arrays[name]
    refresh_transposed(model._meta, model._mem)  # wt is derived: rebuild it, never trust it
    model._alloc_work()  # a fresh predict cache: nothing computed before the save is reused
    health = getattr(model, "_health", None)
    if health is not None:  # the counters jumped: take them as seen, without warnings
        health.sync(model._meta, model._fmeta)
    if hasattr(model, "_poll_in"):  # learn calls until the next TBPTT boundary
        model._poll_in = model.k1 - int(model._counts[0, 0]) % model.k1
    return model


__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "construct",
    "decode_value",
    "describe",
    "dumps",
    "encode_value",
    "engine_arrays",
    "loads",
    "read",
    "restore_engine",
    "upgraded_meta",
    "write",
]
