"""Rules for one CSV cell that every path shares: what is a number, and what is safe to echo.

Batch scoring (:mod:`.table_validation`, :mod:`.csv_files`) and the API's CSV upload
(:mod:`.csv_upload`, ``handlers.csv_answer``) both use these, so a cell means the same thing
whichever way it arrives. Standard library only.

Numbers. Surrounding whitespace is ignored (``str.strip``, as for every cell); what remains is
a number only when it is ASCII: an optional sign, digits with an optional decimal point (or a
point then digits), an optional exponent. Python's ``float()`` also takes any script's digits
(``'١٢.٦٦'``, ``'１２'``) and ``_`` separators (``'1_000'``): those are not numbers here. The
spellings ``nan``, ``inf`` and ``infinity`` (any case, signed) parse, as ``float()`` and pandas
read them, and a range check then refuses them, so no path ever scores one.

Formulas. A spreadsheet opening a CSV runs a cell that starts with ``=``, ``+``, ``-`` or ``@``
(some also after a leading tab or carriage return) as a formula: ``=HYPERLINK(...)`` in an
echoed product id would run on the reader's machine. Every echoed cell goes through
:func:`neutralize` on output (the OWASP rule for CSV injection): such a cell gets a leading
``'``, which makes it text, unless it is a plain number such as ``-3.5`` or ``+2``.
"""

from __future__ import annotations

import re

#: A plain decimal number in ASCII: ``float()``'s grammar without ``_``, nan or infinity.
PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPECIAL = frozenset({"nan", "inf", "infinity"})
#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: A cell start (after a comma or a line break) followed by a formula start, in CSV text without quotes.
_CELL_STARTS = tuple(separator + start for separator in ",\n" for start in FORMULA_STARTS[:5])


def parse_number(text: str) -> float | None:
    """The number a cell holds under the one rule above, or None when it is not a number."""
    text = text.strip()
    unsigned = text[1:] if text.startswith(("+", "-")) else text
    if PLAIN_NUMBER.fullmatch(text) or unsigned.lower() in _SPECIAL:
        return float(text)
    return None


def neutralize(cell: str) -> str:
    """``cell`` made safe to open in a spreadsheet: a leading ``'`` when it would start a formula."""
    if cell.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def may_start_formula(text: str) -> bool:
    """Whether unquoted CSV ``text`` (no ``"`` or ``\\r`` in it) may hold a cell to neutralize.

    False is certain; True (a plain negative number too) only means the cells must be looked at
    one by one. Most text holds none of the characters: one ``memchr`` each, well under a
    millisecond for 50,000 rows (a regular expression costs 100 times more).
    """
    if not any(start in text for start in FORMULA_STARTS[:5]):
        return False
    return text.startswith(FORMULA_STARTS) or any(start in text for start in _CELL_STARTS)
