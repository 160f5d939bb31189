"""Names people type or phones report, made safe to store and show.

Unicode's bidirectional controls reorder the text around them: "Invoice ‮fdp.exe" shows
as "Invoice exe.pdf", and a client or user name can flip a whole row of the history. No
name needs them (Arabic and Latin mix correctly without), so every writer of a name,
title or push name passes it through :func:`clean_name` before it is stored. The UI also
isolates each name it renders, for rows written before this rule.
"""

from __future__ import annotations

# Embeddings and overrides (U+202A–U+202E), isolates (U+2066–U+2069), the left-to-right
# and right-to-left marks (U+200E, U+200F) and the Arabic letter mark (U+061C).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_DROP = {ord(ch): None for ch in BIDI_CONTROLS}


def clean_name(value: str | None) -> str:
    """``value`` without bidirectional control characters and outer blanks ("" for None)."""
    return (value or "").translate(_DROP).strip()
