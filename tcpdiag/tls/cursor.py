"""A bounds-checked reader over bytes, in the style of aioquic's `Buffer.pull_*`.

Every read that would run past the end raises `DecodeError`, never IndexError or struct.error:
the stream layer turns that one exception type into a malformed-message event.
"""

from __future__ import annotations

from tcpdiag.errors import DecodeError


class Cursor:
    __slots__ = ("_data", "_end", "pos")

    def __init__(
        self, data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None
    ) -> None:
        self._data = bytes(data) if not isinstance(data, bytes) else data
        self.pos = start
        self._end = len(self._data) if end is None else end

    @property
    def remaining(self) -> int:
        return self._end - self.pos

    def eof(self) -> bool:
        return self.pos >= self._end

    def _need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self._end:
            raise DecodeError(f"{what}: need {n} bytes at {self.pos}, {self.remaining} left")

    def pull_uint8(self, what: str = "uint8") -> int:
        self._need(1, what)
        value = self._data[self.pos]
        self.pos += 1
        return value

    # Fixed-size integers from their bytes, no slice and no int.from_bytes call: the hello
    # parsers read a few hundred per handshake.
    def pull_uint16(self, what: str = "uint16") -> int:
        self._need(2, what)
        data, pos = self._data, self.pos
        self.pos = pos + 2
        return (data[pos] << 8) | data[pos + 1]

    def pull_uint24(self, what: str = "uint24") -> int:
        self._need(3, what)
        data, pos = self._data, self.pos
        self.pos = pos + 3
        return (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2]

    def pull_bytes(self, n: int, what: str = "bytes") -> bytes:
        self._need(n, what)
        value = self._data[self.pos : self.pos + n]
        self.pos += n
        return value

    def pull_vector(self, length_size: int, what: str = "vector") -> Cursor:
        """A sub-cursor over a length-prefixed vector (1, 2 or 3 length bytes); skips it here."""
        if length_size == 1:
            n = self.pull_uint8(what)
        elif length_size == 2:
            n = self.pull_uint16(what)
        else:
            n = self.pull_uint24(what)
        self._need(n, what)
        sub = Cursor(self._data, self.pos, self.pos + n)
        self.pos += n
        return sub

    def pull_uint16_list(self, length_size: int, what: str = "list") -> list[int]:
        sub = self.pull_vector(length_size, what)
        if sub.remaining % 2:
            raise DecodeError(f"{what}: odd length {sub.remaining}")
        return [sub.pull_uint16(what) for _ in range(sub.remaining // 2)]
