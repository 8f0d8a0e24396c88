"""Email addresses that look alike must not make separate accounts.

Two kinds of look-alikes. Compatibility forms (fullwidth letters such as U+FF41, the
ligature U+FB01 for `fi`) are folded into the plain letters by NFKC, so they become one
address (normalize_email). Letters of another script mixed in (a Cyrillic U+0430 among
Latin letters, in the local part or in a label of the domain) no normal form folds: new
addresses with those are refused. The domain is IDNA-normalised by the address validator
(UTS #46: `XN--BCHER-KVA.DE`, its fullwidth spelling and `bücher.de` are one domain).
"""

from __future__ import annotations

import unicodedata

from confusable_homoglyphs import categories, confusables

# Scripts that are written together in ordinary text (UTS #39's "highly restrictive"
# profile): a Japanese, Chinese or Korean address mixes them without deceiving anyone.
_USUAL_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
_NO_SCRIPT = frozenset({"COMMON", "INHERITED"})  # digits, punctuation, combining marks


def folded(value: object) -> object:
    """NFKC before an address is validated, so that what is validated is what is kept:
    a fullwidth at sign (U+FF20) folds into a second `@` and is refused there."""
    return unicodedata.normalize("NFKC", value) if isinstance(value, str) else value


def _deceptive(text: str) -> bool:
    scripts = {categories.alias(char) for char in text} - _NO_SCRIPT
    if len(scripts) <= 1 or any(scripts <= usual for usual in _USUAL_MIXES):
        return False
    return bool(confusables.is_confusable(text))


def refuse_lookalikes(address: str) -> str:
    """The address, if neither its local part nor any label of its domain mixes scripts
    with letters that pass for another script's (a validated address: one `@`)."""
    local, _, domain = address.rpartition("@")
    if _deceptive(local) or any(_deceptive(label) for label in domain.split(".")):
        raise ValueError(
            "mixes letters of different scripts that look alike (such as Cyrillic letters "
            "among Latin ones); write the address in one script"
        )
    return address
