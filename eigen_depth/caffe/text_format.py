"""Protobuf text format (prototxt) for the declared messages: a reader with line:column errors, a writer.

The reader accepts what real Caffe files contain: `#` comments, tabs, `field: { ... }` and `field < ... >`,
single- or double-quoted strings with C escapes (adjacent strings concatenate), bare enum names or
their numbers, numbers like `1e-4`, `.5`, `-inf`, `0x10`, list values `dim: [1, 3]`, and `;`/`,`
separators. Unknown fields are errors that suggest the nearest valid names.
"""
import difflib
import math
import re

import numpy as np

from ..errors import PrototxtError
from .message import ARRAY_DTYPES, FLOAT32_MAX

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\f\v]+|\#[^\n]*)
  | (?P<newline>\n)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[fF]?)(?![A-Za-z0-9_]))
  | (?P<ident>[-+]?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<symbol>[{}:<>\[\],;])
""", re.VERBOSE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
            "\\": "\\", "'": "'", '"': '"', "?": "?"}
_CLOSERS = {"{": "}", "<": ">"}
_SPECIAL_FLOATS = {"inf": math.inf, "infinity": math.inf, "nan": math.nan}
MAX_DEPTH = 100


class Token:
    __slots__ = ("kind", "text", "line", "column")

    def __init__(self, kind, text, line, column):
        self.kind, self.text, self.line, self.column = kind, text, line, column


def tokenize(text, source):
    tokens = []
    line, line_start, pos, end = 1, 0, 0, len(text)
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None:
            snippet = text[pos:pos + 12].split("\n")[0]
            raise PrototxtError(f"{source}:{line}:{pos - line_start + 1}: unexpected character(s) "
                                f"'{snippet}': expected a field name, value, string or one of {{ }} : < >")
        kind = match.lastgroup
        if kind == "newline":
            line, line_start = line + 1, match.end()
        elif kind != "space":
            tokens.append(Token(kind, match.group(), line, pos - line_start + 1))
        pos = match.end()
    tokens.append(Token("end", "", line, pos - line_start + 1))
    return tokens


def _unescape(token, source):
    """The bytes a quoted string token stands for."""
    body = token.text[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out += char.encode("utf-8", "surrogatepass")  # a lone surrogate then fails as invalid UTF-8
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out += _ESCAPES[nxt].encode()
            i += 2
        elif nxt in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[i + 1:]).group()
            out.append(int(digits, 8) & 0xFF)
            i += 1 + len(digits)
        elif nxt in "xX" and re.match(r"[0-9a-fA-F]", body[i + 2:i + 3]):
            digits = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2:]).group()
            out.append(int(digits, 16))
            i += 2 + len(digits)
        else:
            raise PrototxtError(f"{source}:{token.line}:{token.column}: invalid escape '\\{nxt}' in string "
                                f"{token.text}")
    return bytes(out)


class _Parser:
    def __init__(self, text, source, allow_overwrites=False):
        self.source = source
        self.allow_overwrites = allow_overwrites
        self.tokens = tokenize(text, source)
        self.index = 0

    def error(self, token, message):
        near = f" near '{token.text}'" if token.text else " at the end of the file"
        return PrototxtError(f"{self.source}:{token.line}:{token.column}: {message}{near}")

    def peek(self):
        return self.tokens[self.index]

    def take(self):
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept(self, text):
        if self.peek().kind == "symbol" and self.peek().text == text:
            return self.take()
        return None

    def expect(self, text, what):
        token = self.take()
        if token.kind != "symbol" or token.text != text:
            raise self.error(token, f"expected '{text}' {what}")
        return token

    def parse_body(self, message, closer, depth):
        if depth > MAX_DEPTH:
            raise self.error(self.peek(), f"messages nested more than {MAX_DEPTH} deep")
        arrays = {}
        while True:
            token = self.peek()
            if closer is None and token.kind == "end":
                break
            if closer is not None and token.kind == "symbol" and token.text == closer:
                self.take()
                break
            if token.kind != "ident" or token.text[0] in "+-":
                if token.kind == "end":
                    raise self.error(token, f"missing '{closer}': the file ends inside a {message.TYPE_NAME}")
                raise self.error(token, f"expected a field name of {message.TYPE_NAME}")
            self.take()
            field = message.FIELDS_BY_NAME.get(token.text)
            if field is None:
                raise self.error(token, self._unknown_field_message(message, token.text))
            self.parse_field(message, field, token, arrays, depth)
            if not self.accept(";"):
                self.accept(",")
        for name, pieces in arrays.items():
            message._values[name] = np.array(pieces, dtype=ARRAY_DTYPES[message.FIELDS_BY_NAME[name].kind])

    @staticmethod
    def _unknown_field_message(message, name):
        names = list(message.FIELDS_BY_NAME)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(close)}?" if close else f"valid fields: {', '.join(sorted(names))}"
        if message.TYPE_NAME == "V1LayerParameter" and name == "layer":
            hint = "this is a V0 (2014) layer definition, which is not supported: convert it with an older Caffe"
        return f"unknown field '{name}' in {message.TYPE_NAME} ({hint})"

    def parse_field(self, message, field, name_token, arrays, depth):
        if field.kind == "message":
            colon = self.accept(":")
            if colon and self.accept("["):
                if not self.accept("]"):
                    while True:
                        self.parse_sub_message(message, field, name_token, depth)
                        if self.accept("]"):
                            break
                        self.expect(",", "between list items")
                return
            self.parse_sub_message(message, field, name_token, depth)
            return
        self.expect(":", f"after field name '{field.name}'")
        if self.accept("["):
            if not field.repeated:
                raise self.error(name_token, f"field '{field.name}' is not repeated and cannot take a list")
            if not self.accept("]"):
                while True:
                    self.store(message, field, self.parse_scalar(field), arrays, name_token)
                    if self.accept("]"):
                        break
                    self.expect(",", "between list items")
            return
        self.store(message, field, self.parse_scalar(field), arrays, name_token)

    def check_singular(self, message, field, name_token):
        """protobuf's TextFormat::Parse (what Caffe calls) rejects a non-repeated field given twice."""
        if not field.repeated and not self.allow_overwrites and field.name in message._values:
            raise self.error(name_token, f"non-repeated field '{field.name}' of {message.TYPE_NAME} is given "
                                         "twice (Caffe rejects this): keep one")

    def parse_sub_message(self, message, field, name_token, depth):
        self.check_singular(message, field, name_token)
        opener = self.take()
        if opener.kind != "symbol" or opener.text not in _CLOSERS:
            raise self.error(opener, f"expected '{{' to open {field.name} ({field.type_name})")
        sub = field.message_class()
        self.parse_body(sub, _CLOSERS[opener.text], depth + 1)
        if field.repeated:
            list.append(getattr(message, field.name), sub)
        elif field.name in message._values:
            message._values[field.name].MergeFrom(sub)
        else:
            message._values[field.name] = sub

    def store(self, message, field, value, arrays, name_token):
        if field.kind in ARRAY_DTYPES:
            arrays.setdefault(field.name, []).append(value)
            return
        try:
            value = field.coerce(value)
        except (TypeError, ValueError) as error:
            raise self.error(name_token, str(error)) from None
        self.check_singular(message, field, name_token)
        if field.repeated:
            list.append(getattr(message, field.name), value)
        else:
            message._values[field.name] = value

    def parse_scalar(self, field):
        kind = field.kind
        token = self.take()
        if kind in ("string", "bytes"):
            if token.kind != "string":
                raise self.error(token, f"field '{field.name}' takes a quoted string")
            data = _unescape(token, self.source)
            while self.peek().kind == "string":
                data += _unescape(self.take(), self.source)
            if kind == "bytes":
                return data
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                raise self.error(token, f"string for '{field.name}' is not valid UTF-8") from None
        if kind == "bool":
            if token.text in ("true", "True", "t", "1"):
                return True
            if token.text in ("false", "False", "f", "0"):
                return False
            raise self.error(token, f"field '{field.name}' takes true or false")
        if kind == "enum":
            if token.kind == "ident":
                if token.text not in field.enum.by_name:
                    close = difflib.get_close_matches(token.text, list(field.enum.by_name), n=1)
                    hint = f" (did you mean {close[0]}?)" if close else ""
                    raise self.error(token, f"'{token.text}' is not a value of {field.enum.name}: use one of "
                                            f"{', '.join(field.enum.by_name)}{hint}")
                return token.text
            if token.kind == "number" and re.fullmatch(r"[-+]?\d+", token.text):
                return self.parse_int(token, field)
            raise self.error(token, f"field '{field.name}' takes one of {', '.join(field.enum.by_name)}")
        if kind in ("float", "double", "float_array", "double_array"):
            if token.kind == "ident" and token.text.lstrip("+-").lower() in _SPECIAL_FLOATS:
                value = _SPECIAL_FLOATS[token.text.lstrip("+-").lower()]
                return -value if token.text.startswith("-") else value
            if token.kind != "number":
                raise self.error(token, f"field '{field.name}' takes a number")
            text = token.text
            if text.lower().lstrip("+-").startswith("0x"):
                return float(int(text, 16))
            return float(text.rstrip("fF"))
        # integers
        if token.kind != "number":
            raise self.error(token, f"field '{field.name}' takes an integer")
        return self.parse_int(token, field)

    def parse_int(self, token, field):
        """An integer token as protobuf reads it: 0x.. is hex and, as in C, a leading 0 means octal."""
        text = token.text
        digits = text.lstrip("+-")
        try:
            if digits[:2].lower() == "0x":
                return int(text, 16)
            if len(digits) > 1 and digits[0] == "0" and digits.isdigit():
                if not set(digits) <= set("01234567"):
                    raise self.error(token, f"field '{field.name}': a number with a leading 0 is octal in "
                                            "protobuf text, and 8 or 9 are not octal digits: drop the 0")
                return int(text, 8)
            return int(text, 10)
        except ValueError:
            raise self.error(token, f"field '{field.name}' takes an integer, not a decimal number") from None


def parse_text(cls, text, source="<string>", allow_overwrites=False):
    """Parses protobuf text format into a new message of type cls. As protobuf's TextFormat::Parse
    (which Caffe uses), a non-repeated field given twice is an error unless allow_overwrites=True,
    in which case the last one wins (scalars) or they merge (messages)."""
    message = cls()
    parser = _Parser(text, source, allow_overwrites)
    parser.parse_body(message, None, 0)
    return message


def merge_text(message, text, source="<string>"):
    """Merges text format into an existing message (protobuf's text_format.Merge: singular fields
    given twice are allowed, the last one wins)."""
    message.MergeFrom(parse_text(type(message), text, source, allow_overwrites=True))
    return message


# Writing ---------------------------------------------------------------------------------------

def format_float(value, double=False):
    """The shortest text that reads back as the same float32 (or double) value."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(float(value)) if double else _short_f32(value)


def _short_f32(value):
    text = np.format_float_positional(np.float32(value), unique=True, trim="-")
    sci = np.format_float_scientific(np.float32(value), unique=True, trim="-")
    mantissa, exponent = sci.split("e")
    sci = f"{mantissa}e{int(exponent)}"
    shortest = text if len(text) <= len(sci) else sci
    if abs(float(shortest)) > FLOAT32_MAX:  # "3.4028235e38" is above FLT_MAX: protobuf reads it as inf
        return repr(float(value))
    return shortest


def _quote(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    out = []
    for byte in data:
        char = chr(byte)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _scalar_text(field, value):
    kind = field.kind
    if kind in ("string", "bytes"):
        return _quote(value)
    if kind == "bool":
        return "true" if value else "false"
    if kind == "enum":
        return field.enum.by_number.get(value, str(value))
    if kind in ("float", "float_array"):
        return format_float(float(value))
    if kind in ("double", "double_array"):
        return format_float(float(value), double=True)
    return str(value)


def write_lines(message, indent, lines):
    pad = "  " * indent
    fields = sorted(message.ListFields(), key=lambda item: _declaration_index(message, item[0]))
    for field, value in fields:
        values = value if field.repeated else [value]
        for item in values:
            if field.kind == "message":
                lines.append(f"{pad}{field.name} {{")
                write_lines(item, indent + 1, lines)
                lines.append(f"{pad}}}")
            else:
                lines.append(f"{pad}{field.name}: {_scalar_text(field, item)}")


def _declaration_index(message, field):
    return list(message.FIELDS_BY_NAME).index(field.name)


def to_text(message):
    """The message in protobuf text format, fields in caffe.proto's declaration order."""
    lines = []
    write_lines(message, 0, lines)
    return "\n".join(lines) + ("\n" if lines else "")
