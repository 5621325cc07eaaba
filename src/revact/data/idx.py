"""Read and write IDX files, the format of (Fashion-)MNIST.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then ``ndim``
big-endian uint32 sizes, then the array in C order. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np

__all__ = ["read_idx", "write_idx", "IDXError"]

# IDX dtype codes; multi-byte types are big-endian on disk.
_CODES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXError(ValueError):
    """An IDX file is truncated or malformed."""


def _open(path: str | os.PathLike, mode: str):
    return gzip.open(path, mode) if str(path).endswith(".gz") else open(path, mode)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally ``.gz``) into a native-endian numpy array.

    Raises:
        IDXError: bad magic number, unknown dtype, or size mismatch.
    """
    try:
        with _open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # gzip raises these for corrupt archives
        raise IDXError(f"{path}: cannot read ({e})") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise IDXError(f"{path}: not an IDX file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _CODES:
        raise IDXError(f"{path}: unknown IDX dtype code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{path}: truncated header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _CODES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise IDXError(
            f"{path}: expected {expected} data bytes for shape {shape}, found {len(data) - header}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``)."""
    array = np.asarray(array)
    match = [(c, d) for c, d in _CODES.items()
             if d.kind == array.dtype.kind and d.itemsize == array.dtype.itemsize]
    if not match:
        raise IDXError(f"dtype {array.dtype} has no IDX code")
    code, dtype = match[0]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with _open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=dtype).tobytes())
