"""JSON text as TensorFlow Serving's RapidJSON reads and writes it.

TF Serving parses request bodies with RapidJSON (`kParseNanAndInfFlag`) and writes answers
with its `PrettyWriter`, so its error messages ("JSON Parse error: Missing a comma or ']'
after an array element. at offset: 17") and its odd layout (`"predictions": [1.0, 2.0\n
]`) come from there. This module reproduces both:

- `parse(body)`: bytes -> Python values. Numbers keep RapidJSON's distinction: an integer
  literal within int64/uint64 is an `int`, anything else (a fraction, an exponent, NaN,
  Infinity, a larger integer) a `float`. Strings are `str` (undecodable bytes kept with
  `surrogateescape`), objects `JsonObject`s (member pairs in order, duplicates kept).
- `PrettyWriter`: RapidJSON's pretty writer (4-space indent, the single-line-array option).
- `value_to_string(value)`: how TF Serving prints a JSON value inside an error message.
- `format_decimal(value, single)`: how TF Serving prints a float or double.

Ordinary bodies go through the standard library's C parser; RapidJSON's own rules (its error
messages and offsets, `Inf`, `-NaN`, a NUL byte ending the document, exponents that are too
big, lone surrogates) are applied by a byte-level reader only when that parser refuses a body
or the body contains something only RapidJSON judges.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

# Deeper nesting than any tensor has (TensorFlow allows rank 254). RapidJSON itself has no
# limit (it recurses until the stack runs out); a server must not, so this one is ours.
MAX_DEPTH = 300

# GetParseError_En's messages.
DOCUMENT_EMPTY = "The document is empty."
ROOT_NOT_SINGULAR = "The document root must not be followed by other values."
VALUE_INVALID = "Invalid value."
OBJECT_MISS_NAME = "Missing a name for object member."
OBJECT_MISS_COLON = "Missing a colon after a name of object member."
OBJECT_MISS_COMMA = "Missing a comma or '}' after an object member."
ARRAY_MISS_COMMA = "Missing a comma or ']' after an array element."
UNICODE_ESCAPE_INVALID_HEX = "Incorrect hex digit after \\u escape in string."
UNICODE_SURROGATE_INVALID = "The surrogate pair in string is invalid."
ESCAPE_INVALID = "Invalid escape character in string."
MISS_QUOTATION_MARK = "Missing a closing quotation mark in string."
INVALID_ENCODING = "Invalid encoding in string."
NUMBER_TOO_BIG = "Number too big to be stored in double."
NUMBER_MISS_FRACTION = "Miss fraction part in number."
NUMBER_MISS_EXPONENT = "Miss exponent in number."
TOO_DEEP = f"Nesting deeper than {MAX_DEPTH} levels."

_BOM = b"\xef\xbb\xbf"
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
_FLOAT_MAX = float(np.finfo(np.float32).max)


class JsonParseError(ValueError):
    """A body RapidJSON refuses; `str()` is TF Serving's message."""

    def __init__(self, reason: str, offset: int):
        super().__init__(f"JSON Parse error: {reason} at offset: {offset}")
        self.reason = reason
        self.offset = offset


class JsonObject:
    """A JSON object: its `(name, value)` members in document order, duplicates kept (as
    RapidJSON keeps them); `find` returns the first, as `FindMember` does."""

    __slots__ = ("members",)

    def __init__(self, members=()):
        self.members = list(members)

    def __iter__(self):
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"JsonObject({self.members!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, JsonObject) and self.members == other.members

    def append(self, member) -> None:
        self.members.append(member)

    def find(self, name: str, default=None):
        for key, value in self.members:
            if key == name:
                return value
        return default

    def __contains__(self, name) -> bool:
        return any(key == name for key, _ in self.members)


# -- reading ---------------------------------------------------------------------------------


_CONSTANTS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# What only RapidJSON's rules can judge: an exponent of 100 or more or an integer part of 19
# digits or more (RapidJSON's "too big", integers beyond int64/uint64, which it reads as
# doubles), escaped surrogates (Python accepts lone ones) and NUL (the end of its document).
_FOR_THE_READER = re.compile(
    rb"[eE][+-]?[0-9]{3}|(?:^|[^0-9.eE+-])-?[0-9]{19}|\\u[dD][89a-fA-F]|\x00"
)
_BRACKETS = np.frombuffer(b"[{]}", dtype=np.uint8)


def _max_depth_bound(body: bytes) -> int:
    """An upper bound of the nesting depth (brackets inside strings count too)."""
    data = np.frombuffer(body, dtype=np.uint8)
    steps = np.isin(data, _BRACKETS[:2]).astype(np.int32) - np.isin(data, _BRACKETS[2:])
    return int(np.cumsum(steps).max(initial=0))


def parse(body: bytes):
    """Parse a request body as RapidJSON does; raises `JsonParseError` with its message."""
    plain = (
        not body.startswith(_BOM)
        and not _FOR_THE_READER.search(body)
        and _max_depth_bound(body) <= MAX_DEPTH
    )
    if plain:
        try:
            return json.loads(
                body.decode("utf-8", "surrogateescape"),
                parse_constant=_CONSTANTS.__getitem__,
                object_pairs_hook=JsonObject,
            )
        except (ValueError, RecursionError):
            pass  # the reader below decides, and words the error as RapidJSON does
    return _Reader(body).document()


_WHITESPACE = b" \n\r\t"
_ESCAPES = {
    ord('"'): b'"',
    ord("\\"): b"\\",
    ord("/"): b"/",
    ord("b"): b"\b",
    ord("f"): b"\f",
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
}
_PLAIN_RUN = re.compile(rb'[^"\\\x00-\x1f]+')
_DIGITS = re.compile(rb"[0-9]*")


class _Reader:
    """RapidJSON's GenericReader, byte for byte: the same acceptance, errors and offsets.

    A NUL byte reads as the end of the document, as in RapidJSON's in-memory stream.
    """

    def __init__(self, data: bytes):
        self.data = data
        self.pos = len(_BOM) if data.startswith(_BOM) else 0
        self.depth = 0

    def peek(self) -> int:
        return self.data[self.pos] if self.pos < len(self.data) else 0

    def consume(self, char: str) -> bool:
        if self.peek() == ord(char):
            self.pos += 1
            return True
        return False

    def skip_whitespace(self) -> None:
        while self.peek() in _WHITESPACE and self.peek() != 0:
            self.pos += 1

    def document(self):
        self.skip_whitespace()
        if self.peek() == 0:
            raise JsonParseError(DOCUMENT_EMPTY, self.pos)
        value = self.value()
        self.skip_whitespace()
        if self.peek() != 0:
            raise JsonParseError(ROOT_NOT_SINGULAR, self.pos)
        return value

    def value(self):
        char = self.peek()
        if char == ord("n"):
            return self.literal("null", None)
        if char == ord("t"):
            return self.literal("true", True)
        if char == ord("f"):
            return self.literal("false", False)
        if char == ord('"'):
            return self.string()
        if char in (ord("{"), ord("[")):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise JsonParseError(TOO_DEEP, self.pos)
            value = self.object() if char == ord("{") else self.array()
            self.depth -= 1
            return value
        return self.number()

    def literal(self, word: str, value):
        self.pos += 1
        for char in word[1:]:
            if not self.consume(char):
                raise JsonParseError(VALUE_INVALID, self.pos)
        return value

    def object(self) -> JsonObject:
        self.pos += 1
        members = JsonObject()
        self.skip_whitespace()
        if self.consume("}"):
            return members
        while True:
            if self.peek() != ord('"'):
                raise JsonParseError(OBJECT_MISS_NAME, self.pos)
            name = self.string()
            self.skip_whitespace()
            if not self.consume(":"):
                raise JsonParseError(OBJECT_MISS_COLON, self.pos)
            self.skip_whitespace()
            members.append((name, self.value()))
            self.skip_whitespace()
            if self.consume(","):
                self.skip_whitespace()
            elif self.consume("}"):
                return members
            else:
                raise JsonParseError(OBJECT_MISS_COMMA, self.pos)

    def array(self) -> list:
        self.pos += 1
        items = []
        self.skip_whitespace()
        if self.consume("]"):
            return items
        while True:
            items.append(self.value())
            self.skip_whitespace()
            if self.consume(","):
                self.skip_whitespace()
            elif self.consume("]"):
                return items
            else:
                raise JsonParseError(ARRAY_MISS_COMMA, self.pos)

    def hex4(self, escape_offset: int) -> int:
        text = self.data[self.pos : self.pos + 4]
        for index in range(4):
            if index >= len(text) or chr(text[index]) not in "0123456789abcdefABCDEF":
                self.pos += index
                raise JsonParseError(UNICODE_ESCAPE_INVALID_HEX, escape_offset)
        self.pos += 4
        return int(text, 16)

    def string(self) -> str:
        self.pos += 1
        out = bytearray()
        while True:
            run = _PLAIN_RUN.match(self.data, self.pos)
            if run:
                out += run.group()
                self.pos = run.end()
            char = self.peek()
            if char == ord("\\"):
                escape_offset = self.pos
                self.pos += 1
                escape = self.peek()
                if escape in _ESCAPES and escape != 0:
                    self.pos += 1
                    out += _ESCAPES[escape]
                elif escape == ord("u"):
                    self.pos += 1
                    codepoint = self.hex4(escape_offset)
                    if 0xD800 <= codepoint <= 0xDBFF:  # a high surrogate needs its low half
                        if not (self.consume("\\") and self.consume("u")):
                            raise JsonParseError(UNICODE_SURROGATE_INVALID, escape_offset)
                        low = self.hex4(escape_offset)
                        if not 0xDC00 <= low <= 0xDFFF:
                            raise JsonParseError(UNICODE_SURROGATE_INVALID, escape_offset)
                        codepoint = ((codepoint - 0xD800) << 10 | (low - 0xDC00)) + 0x10000
                    # A lone low surrogate is encoded as it is (RapidJSON does not check it).
                    out += chr(codepoint).encode("utf-8", "surrogatepass")
                else:
                    raise JsonParseError(ESCAPE_INVALID, escape_offset)
            elif char == ord('"'):
                self.pos += 1
                return out.decode("utf-8", "surrogateescape")
            elif char == 0:
                raise JsonParseError(MISS_QUOTATION_MARK, self.pos)
            else:  # another control character
                raise JsonParseError(INVALID_ENCODING, self.pos)

    def digits(self) -> bytes:
        run = _DIGITS.match(self.data, self.pos).group()
        self.pos += len(run)
        return run

    def number(self):
        """RapidJSON's ParseNumber: its integer/double split and its "too big" rules."""
        start = self.pos
        minus = self.consume("-")
        char = self.peek()
        prefix = None  # NaN or Infinity read: RapidJSON still reads a fraction or exponent
        if char == ord("0"):
            integer = self.data[self.pos : self.pos + 1]
            self.pos += 1
        elif ord("1") <= char <= ord("9"):
            integer = self.digits()
        elif char in (ord("N"), ord("I")):
            if self.consume("N"):
                if not (self.consume("a") and self.consume("N")):
                    raise JsonParseError(VALUE_INVALID, self.pos)
                special = math.nan
            elif self.consume("I") and self.consume("n") and self.consume("f"):
                if self.peek() == ord("i") and not all(self.consume(c) for c in "inity"):
                    raise JsonParseError(VALUE_INVALID, self.pos)
                special = -math.inf if minus else math.inf
            else:
                raise JsonParseError(VALUE_INVALID, self.pos)
            if self.peek() not in b".eE" or self.peek() == 0:
                return special
            # RapidJSON goes on with an integer part of 0 ("NaN.5" reads as 0.5).
            integer, prefix = b"0", (b"-0" if minus else b"0", self.pos)
        else:
            raise JsonParseError(VALUE_INVALID, self.pos)

        magnitude = int(integer)
        limit = 2**63 if minus else _UINT64_MAX
        use_double = magnitude > limit
        # Significant digits as RapidJSON counts them (they bound the exponent check below).
        significant = min(len(integer), 20) - 1 if integer != b"0" else 0
        if use_double:
            kept = len(str(limit)) - 1  # digits taken before RapidJSON switched to a double
            significant = kept - 1
            value = float(integer[:kept])
            for digit in integer[kept:]:
                if value >= 1.7976931348623157e307:
                    raise JsonParseError(NUMBER_TOO_BIG, start)
                value = value * 10 + (digit - 48)
        exp_frac = 0
        if self.consume("."):
            fraction = self.digits()
            if not fraction:
                raise JsonParseError(NUMBER_MISS_FRACTION, self.pos)
            nonzero = magnitude != 0
            index = 0
            if not use_double:
                significand = magnitude
                while index < len(fraction) and significand <= 2**53 - 1:
                    significand = significand * 10 + fraction[index] - 48
                    exp_frac -= 1
                    significant += significand != 0
                    index += 1
                nonzero = significand != 0
                use_double = True
            for digit in fraction[index:]:
                if significant < 17:
                    exp_frac -= 1
                    nonzero = nonzero or digit != 48
                    significant += nonzero
        exponent_seen = self.consume("e") or self.consume("E")
        if exponent_seen:
            use_double = True
            exp_minus = False
            if not self.consume("+"):
                exp_minus = self.consume("-")
            exponent = self.digits()
            if not exponent:
                raise JsonParseError(NUMBER_MISS_EXPONENT, self.pos)
            if not exp_minus and int(exponent) > 308 - exp_frac:
                raise JsonParseError(NUMBER_TOO_BIG, start)
        text = self.data[start : self.pos]
        if prefix is not None:
            text = prefix[0] + self.data[prefix[1] : self.pos]
        if not use_double:
            return -magnitude if minus else magnitude
        value = float(text)
        if math.isinf(value):
            raise JsonParseError(NUMBER_TOO_BIG, start)
        return value


# -- writing ---------------------------------------------------------------------------------

_STRING_ESCAPES = {i: f"\\u{i:04X}" for i in range(0x20)} | {
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0C: "\\f",
    0x0D: "\\r",
    ord('"'): '\\"',
    ord("\\"): "\\\\",
}


def quote(text: str) -> str:
    """A JSON string as RapidJSON's Writer escapes it (other characters written as they are)."""
    return '"' + text.translate(_STRING_ESCAPES) + '"'


class _Truncated(Exception):
    """RapidJSON's Writer refuses NaN and Infinity mid-document and stops writing there."""


class PrettyWriter:
    """RapidJSON's PrettyWriter (indent 4) and its kFormatSingleLineArray option."""

    def __init__(self):
        self.parts: list[str] = []
        self.levels: list[list] = []  # [in_array, value_count] per open container
        self.single_line_arrays = False

    def text(self) -> str:
        return "".join(self.parts)

    def _indent(self) -> None:
        self.parts.append(" " * (4 * len(self.levels)))

    def _prefix(self) -> None:
        if not self.levels:
            return
        level = self.levels[-1]
        if level[0]:
            if level[1] > 0:
                self.parts.append(", " if self.single_line_arrays else ",")
            if not self.single_line_arrays:
                self.parts.append("\n")
                self._indent()
        else:
            if level[1] > 0:
                self.parts.append(",\n" if level[1] % 2 == 0 else ": ")
            else:
                self.parts.append("\n")
            if level[1] % 2 == 0:
                self._indent()
        level[1] += 1

    def start_object(self) -> None:
        self._prefix()
        self.levels.append([False, 0])
        self.parts.append("{")

    def end_object(self) -> None:
        if self.levels.pop()[1]:
            self.parts.append("\n")
            self._indent()
        self.parts.append("}")

    def start_array(self) -> None:
        self._prefix()
        self.levels.append([True, 0])
        self.parts.append("[")

    def end_array(self) -> None:
        if self.levels.pop()[1] and not self.single_line_arrays:
            self.parts.append("\n")
            self._indent()
        self.parts.append("]")

    def string(self, text: str) -> None:
        self._prefix()
        self.parts.append(quote(text))

    key = string

    def raw(self, token: str) -> None:
        """A number already formatted (RawValue)."""
        self._prefix()
        self.parts.append(token)

    def double(self, value: float) -> None:
        self._prefix()
        if not math.isfinite(value):
            raise _Truncated
        self.parts.append(grisu_format(value))

    def value(self, value) -> None:
        """Write a parsed JSON value (RapidJSON's `Value::Accept`)."""
        if value is None:
            self.raw("null")
        elif isinstance(value, bool):
            self.raw("true" if value else "false")
        elif isinstance(value, int):
            self.raw(str(value))
        elif isinstance(value, float):
            self.double(value)
        elif isinstance(value, str):
            self.string(value)
        elif isinstance(value, JsonObject):
            self.start_object()
            for name, member in value:
                self.key(name)
                self.value(member)
            self.end_object()
        else:
            self.start_array()
            for item in value:
                self.value(item)
            self.end_array()


def grisu_format(value: float) -> str:
    """RapidJSON's dtoa: the shortest round-trip digits, laid out by its Prettify."""
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    # repr gives the shortest digits that round-trip, as Grisu2 does: value = digits * 10^k.
    mantissa, _, power = repr(abs(value)).lower().partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    k = int(power or 0) - len(fraction)
    stripped = digits.rstrip("0")
    k += len(digits) - len(stripped)
    digits = stripped
    length = len(digits)
    kk = length + k
    if 0 <= k and kk <= 21:
        text = digits + "0" * k + ".0"
    elif 0 < kk <= 21:
        text = digits[:kk] + "." + digits[kk:]
    elif -6 < kk <= 0:
        text = "0." + "0" * -kk + digits
    elif length == 1:
        text = digits + "e" + str(kk - 1)
    else:
        text = digits[0] + "." + digits[1:] + "e" + str(kk - 1)
    return sign + text


def format_decimal(value, single: bool) -> str:
    """TF Serving's WriteDecimal: six significant digits when they round-trip, else
    max_digits10 (9 for float, 17 for double); a whole number gets ".0"; NaN, Infinity and
    -Infinity by name."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:g}"
    back = float(text)
    if single:
        same = np.float32(back) == np.float32(value)
    else:
        same = back == value
    if not same:
        text = f"{value:.{9 if single else 17}g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def value_to_string(value) -> str:
    """TF Serving's JsonValueToString, used in its error messages: a double that fits a float
    is printed as a float, others as a double; containers pretty-printed (and cut short
    where RapidJSON's writer stops at a NaN or Infinity inside them)."""
    if isinstance(value, float):
        if -3.4028234e38 <= value <= 3.4028234e38:
            return format_decimal(np.float32(value), single=True)
        return format_decimal(value, single=False)
    writer = PrettyWriter()
    try:
        writer.value(value)
    except _Truncated:
        pass
    return writer.text()


def type_name(value) -> str:
    """RapidJSON's type names, as TF Serving's messages print them."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, str):
        return "String"
    if isinstance(value, JsonObject):
        return "Object"
    return "Array"


def is_float_range(value: float) -> bool:
    return -_FLOAT_MAX <= value <= _FLOAT_MAX
