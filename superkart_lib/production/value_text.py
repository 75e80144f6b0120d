"""Client values quoted in error messages: one short line, whatever the value, and never an exception.

A refused value may be anything the JSON parser accepts: a list nested just short of the
parser's limit (~980 levels under the default recursion limit, so ``json.dumps`` and ``repr``
overflow the stack a few frames further down), a megabyte string, a 4,300-digit integer, NUL
or a lone surrogate. The text is built without recursion and stops at :data:`WIDTH`
characters, so describing a value costs the same for any value, and any failure falls back to
naming its type: a bad value must give a 4xx, not a 5xx. Standard library only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

#: Characters of a value's spelling quoted in a message.
WIDTH = 60
_DONE = object()


class _Token(str):
    """Spelling already written (a bracket, a separator, a key), as opposed to a value still to spell."""


def _parts(value: Any) -> Iterator[Any]:
    """The pieces of a container in JSON spelling, lazily: a long list costs only what is shown."""
    if isinstance(value, dict):
        yield _Token("{")
        for index, (key, item) in enumerate(value.items()):
            key_text = json.dumps(key[: WIDTH + 1] if isinstance(key, str) else str(key)[: WIDTH + 1])
            yield _Token(f"{', ' if index else ''}{key_text}: ")
            yield item
        yield _Token("}")
    else:
        yield _Token("[")
        for index, item in enumerate(value):
            if index:
                yield _Token(", ")
            yield item
        yield _Token("]")


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value[: WIDTH + 1])  # escapes are per character: the cut shows the same prefix
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return int.__repr__(value)  # as json.dumps spells it, int subclasses too
        except ValueError:  # int -> str stops at 4,300 digits (Python 3.11+); the parser refuses more
            return f"a number of about {value.bit_length() * math.log10(2):,.0f} digits"
    if value is None or isinstance(value, (bool, float)):
        return json.dumps(value)  # Infinity and NaN as Python's parser reads them
    return repr(value)[: WIDTH + 1]


def _spelling(value: Any) -> str:
    """At most ``WIDTH + 1`` characters of ``value`` in JSON spelling, walked with an explicit stack."""
    out: list[str] = []
    size = 0
    pending: list[Iterator[Any]] = [iter((value,))]
    while pending and size <= WIDTH:
        item = next(pending[-1], _DONE)
        if item is _DONE:
            pending.pop()
        elif isinstance(item, _Token):
            out.append(item)
            size += len(item)
        elif isinstance(item, (list, tuple, dict)):
            pending.append(_parts(item))
        else:
            text = _scalar(item)
            out.append(text)
            size += len(text)
    return "".join(out)[: WIDTH + 1]


def _size(value: Any) -> str:
    count = len(value)
    if isinstance(value, dict):
        return f"an object of {count:,} field{'' if count == 1 else 's'}"
    return f"an array of {count:,} item{'' if count == 1 else 's'}"


def describe(value: Any) -> str:
    """``value`` for a message: strings quoted 'like this', the rest in JSON spelling, cut to one short line.

    A container too long to show whole is introduced by its kind and size (``an array of 1
    item: [[[[...``). Never raises.
    """
    try:
        text = repr(value[: WIDTH + 1]) if isinstance(value, str) else _spelling(value)
        if len(text) <= WIDTH:
            return text
        cut = text[: WIDTH - 3] + "..."
        return f"{_size(value)}: {cut}" if isinstance(value, (list, tuple, dict)) else cut
    except Exception:  # a message about a bad value must not turn a 4xx into a 5xx
        return f"a value of type {type(value).__name__}"


def field_name(name: Any) -> str:
    """A field name for a message, quoted: ``'Product_Weight'`` as is, a client's odd key escaped and cut."""
    if isinstance(name, str) and len(name) <= WIDTH and name.isprintable() and "'" not in name:
        return f"'{name}'"
    return describe(name)
