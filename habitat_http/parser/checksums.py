"""UKHAS sentence checksums, as upper-case hexadecimal text.

Pure code with no I/O. The algorithms and their names are habitat's
(ukhas/habitat ``habitat/utils/checksums.py`` and the UKHAS parser module): a
checksum is computed over the sentence text between the leading ``$$`` and the
last ``*``, and written after the ``*`` as 4 hex digits (``crc16-ccitt``,
``fletcher-16``, ``fletcher-16-256``) or 2 (``xor``), in either case.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Final


def crc16_ccitt(data: bytes) -> str:
    """CRC16-CCITT of *data*: polynomial 0x1021, initial value 0xFFFF, not reflected.

    This is the "CRC-16/CCITT-FALSE" of the UKHAS wiki, which
    ``binascii.crc_hqx(data, 0xFFFF)`` computes.

    Returns:
        4 upper-case hex digits, e.g. ``crc16_ccitt(b"hello,world") == "E408"``.
    """
    return f"{binascii.crc_hqx(data, 0xFFFF):04X}"


def xor(data: bytes) -> str:
    """8-bit XOR of every byte of *data*.

    Returns:
        2 upper-case hex digits, e.g. ``xor(b"hello,world") == "2C"``.
    """
    value = 0
    for byte in data:
        value ^= byte
    return f"{value:02X}"


def fletcher16(data: bytes, modulus: int = 255) -> str:
    """Fletcher-16 of *data*: two running sums taken modulo *modulus*.

    Args:
        data: the bytes to sum.
        modulus: 255 for habitat's ``fletcher-16``; 256 for its ``fletcher-16-256``,
            a variant kept for old payloads.

    Returns:
        4 upper-case hex digits: the first sum in the high byte, the second in the
        low byte, e.g. ``fletcher16(b"hello,world") == "6C62"``.
    """
    first = second = 0
    for byte in data:
        first += byte
        second += first
    return f"{((first % modulus) << 8) | (second % modulus):04X}"


def _fletcher16_256(data: bytes) -> str:
    return fletcher16(data, 256)


def _none(data: bytes) -> str:
    return ""


#: Each checksum name a payload_configuration may use, with its function. ``none``
#: accepts any sentence, with or without a checksum.
ALGORITHMS: Final[dict[str, Callable[[bytes], str]]] = {
    "crc16-ccitt": crc16_ccitt,
    "xor": xor,
    "fletcher-16": fletcher16,
    "fletcher-16-256": _fletcher16_256,
    "none": _none,
}

#: How many hex digits each algorithm writes.
DIGITS: Final[dict[str, int]] = {
    "crc16-ccitt": 4,
    "xor": 2,
    "fletcher-16": 4,
    "fletcher-16-256": 4,
    "none": 0,
}
