"""Bech32 (BIP 173) as age uses it: no length limit, one case per string, checksum over the lowercase form."""

from __future__ import annotations

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_VALUES = {c: i for i, c in enumerate(CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


class Bech32Error(ValueError):
    """The text is not a valid Bech32 string (the message never repeats the text: it may be a secret key)."""


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    mask = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & mask)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & mask)
    elif bits >= from_bits or (acc << (to_bits - bits)) & mask:
        raise Bech32Error("invalid padding in the data part")
    return out


def encode(hrp: str, data: bytes) -> str:
    """The lowercase Bech32 string of ``data`` with human-readable part ``hrp``."""
    hrp = hrp.lower()
    values = _convert(data, 8, 5, pad=True)
    polymod = _polymod(_hrp_expand(hrp) + values + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[v] for v in values + checksum)


def decode(text: str) -> tuple[str, bytes]:
    """``(lowercase hrp, data)`` of a Bech32 string; raises Bech32Error."""
    if text.lower() != text and text.upper() != text:
        raise Bech32Error("mixed upper and lower case")
    if any(not 33 <= ord(c) <= 126 for c in text):
        raise Bech32Error("characters outside printable ASCII")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise Bech32Error("no separator, or the data part is too short")
    hrp, tail = text[:pos], text[pos + 1:]
    try:
        values = [_VALUES[c] for c in tail]
    except KeyError:
        raise Bech32Error("a character outside the Bech32 alphabet") from None
    if _polymod(_hrp_expand(hrp) + values) != 1:
        raise Bech32Error("bad checksum")
    return hrp, bytes(_convert(values[:-6], 5, 8, pad=False))
