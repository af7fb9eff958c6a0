"""The review rubric: a TOML file of items, each one dimension with its levels in words.

Kulkarni et al. (TOCHI 2013) found that single-dimension items whose levels are parallel
sentences cut the peers' median error from 12.4% to 9.9%.  So an item asks about one thing
and its levels complete the same sentence::

    [[item]]
    id = "correctness"
    text = "The code computes what the exercise asks, including the edge cases the grader shows"
    levels = ["wrong on most inputs", "right except for some cases", "right everywhere"]

A score is an index into ``levels``: 0 for the first, ``len(levels) - 1`` (:attr:`Item.max`)
for the last.  The default rubric is ``review/rubric.toml`` (:data:`DEFAULT`).

Mistakes in the file raise :class:`RubricError`, whose message names the file, the line and
the reason (``review/rubric.toml:7: item 'shapes' has 1 level; an item needs at least 2``).
``tomllib`` gives a position only for syntax errors; for the others the line is found by
scanning the text for the item's ``[[item]]`` header and its keys.
"""

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader import ROOT

#: The rubric ``python -m grader review`` uses unless told otherwise.
DEFAULT = ROOT / "review" / "rubric.toml"
#: What an item's ``id`` must look like (it becomes a column of the review files).
ID_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
#: The keys an item may have, all required.
KEYS = ("id", "text", "levels")

_POSITION = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)")
_ITEM_HEADER = re.compile(r"^\s*\[\[\s*item\s*\]\]")


@dataclass(frozen=True)
class Item:
    """One rubric item: a single dimension, scored as an index into ``levels``."""

    id: str
    text: str
    levels: tuple[str, ...]

    @property
    def max(self) -> int:
        """The highest score, ``len(levels) - 1`` (the lowest is 0)."""
        return len(self.levels) - 1


@dataclass(frozen=True)
class Rubric:
    """The items of a rubric, in file order."""

    items: tuple[Item, ...]

    @property
    def by_id(self) -> Mapping[str, Item]:
        """The items by their ``id``."""
        return {item.id: item for item in self.items}


class RubricError(ValueError):
    """A rubric file that cannot be used; the message is ``file:line: reason``."""

    def __init__(self, file: str, line: int, reason: str) -> None:
        super().__init__(f"{file}:{line}: {reason}")
        self.file = file
        self.line = line
        self.reason = reason


def load(path: str | Path = DEFAULT) -> Rubric:
    """The rubric in the TOML file ``path`` (default :data:`DEFAULT`); raises
    :class:`RubricError` for a file that is not a valid rubric, that cannot be read or is not
    UTF-8 (the line of the first undecodable byte is named)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RubricError(str(path), 1, f"cannot read it ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        reason = f"not UTF-8 text (byte 0x{data[exc.start]:02x}): save the rubric as UTF-8"
        raise RubricError(str(path), line, reason) from None
    return parse(text, name=str(path))


def parse(text: str, name: str = "rubric.toml") -> Rubric:
    """The rubric written in ``text``; ``name`` is the file name that error messages give.

    Raises :class:`RubricError` for invalid TOML, a file without items, an item lacking
    ``id``, ``text`` or ``levels`` or having other keys, an ``id`` that is repeated or does not
    match ``[a-z][a-z0-9_]*``, an empty ``text``, and fewer than two levels, levels that are not
    strings, empty or repeated.
    """
    lines = text.splitlines()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        match = _POSITION.search(message)
        line = int(match.group(1)) if match and match.group(1) else max(len(lines), 1)
        reason = _POSITION.sub("", message) if match else message
        raise RubricError(name, line, f"invalid TOML: {reason}") from None

    first_table = next((n for n, line in enumerate(lines) if line.lstrip().startswith("[")), len(lines))
    for key in data:
        if key != "item":
            line = _key_line(lines, key, 0, first_table) or _key_line(lines, key, 0, len(lines)) or 1
            raise RubricError(name, line, f"unknown key '{key}' (a rubric has only [[item]] tables)")
    raw = data.get("item", [])
    if not isinstance(raw, list) or not all(isinstance(entry, dict) for entry in raw):
        line = _key_line(lines, "item", 0, len(lines)) or 1
        raise RubricError(name, line, "'item' must be an array of [[item]] tables")
    if not raw:
        raise RubricError(name, 1, "no items: add [[item]] tables with id, text and levels")

    headers = [n for n, line in enumerate(lines) if _ITEM_HEADER.match(line)]
    items: list[Item] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(raw):
        earlier = sum(1 for other in raw[:index] if other.get("id") == entry.get("id"))
        item = _item(entry, index, _Where(name, lines, headers, index, len(raw), earlier), seen)
        seen[item.id] = index
        items.append(item)
    return Rubric(tuple(items))


class _Where:
    """Finds the line of one item, or of one of its keys, in the rubric's text.

    With one ``[[item]]`` header per item the item's block runs from its header to the next
    one; items written inline (``item = [{...}, ...]``) are searched for in the whole text,
    ``earlier`` telling how many items before this one have the same ``id``.
    """

    def __init__(self, name: str, lines: list[str], headers: list[int], index: int, count: int, earlier: int) -> None:
        self.name = name
        self.lines = lines
        self.earlier = 0
        self.start, self.end = 0, len(lines)
        if len(headers) == count:
            self.start = headers[index]
            self.end = headers[index + 1] if index + 1 < count else len(lines)
        else:
            self.earlier = earlier

    def error(self, reason: str, key: str | None = None, value: str | None = None) -> RubricError:
        """A :class:`RubricError` at the line that sets ``id = "value"`` (when ``value`` is
        given), else at the line of ``key`` in this item, else at the item's header."""
        line = None
        if value is not None:
            line = _id_line(self.lines, value, self.start, self.end, self.earlier)
        if line is None and key is not None:
            line = _key_line(self.lines, key, self.start, self.end)
        return RubricError(self.name, line or self.start + 1, reason)


def _item(entry: dict[str, Any], index: int, where: _Where, seen: dict[str, int]) -> Item:
    """The :class:`Item` of the ``index``-th ``[[item]]`` table, checked; ``seen`` holds the
    ids of the items before it."""
    if "id" not in entry:
        raise where.error(f"item {index + 1} has no id")
    item_id = entry["id"]
    if not isinstance(item_id, str):
        raise where.error(f"item {index + 1}: id must be a string, not {type(item_id).__name__}", key="id")
    label = f"item '{item_id}'"
    if not ID_PATTERN.fullmatch(item_id):
        reason = f"{label}: id must match [a-z][a-z0-9_]* (a lower-case letter, then letters, digits or _)"
        raise where.error(reason, key="id", value=item_id)
    if item_id in seen:
        raise where.error(f"{label}: duplicate id (item {seen[item_id] + 1} has it too)", key="id", value=item_id)
    unknown = [key for key in entry if key not in KEYS]
    if unknown:
        names = ", ".join(f"'{key}'" for key in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise where.error(f"{label}: unknown key{plural} {names} (an item has id, text, levels)", key=unknown[0])
    for key in KEYS[1:]:
        if key not in entry:
            raise where.error(f"{label} has no {key}", key="id", value=item_id)
    text = entry["text"]
    if not isinstance(text, str) or not text.strip():
        raise where.error(f"{label}: text must be a non-empty string", key="text")
    levels = entry["levels"]
    if not isinstance(levels, list):
        raise where.error(f"{label}: levels must be a list of strings, not {type(levels).__name__}", key="levels")
    if len(levels) < 2:
        plural = "" if len(levels) == 1 else "s"
        raise where.error(f"{label} has {len(levels)} level{plural}; an item needs at least 2", key="levels")
    for level in levels:
        if not isinstance(level, str):
            reason = f"{label}: levels must be strings, not {type(level).__name__} ({level!r})"
            raise where.error(reason, key="levels")
        if not level.strip():
            raise where.error(f"{label}: a level is empty", key="levels")
    repeated = [level for n, level in enumerate(levels) if level in levels[:n]]
    if repeated:
        raise where.error(f"{label}: level {repeated[0]!r} is repeated", key="levels")
    return Item(item_id, text, tuple(levels))


def _key_line(lines: list[str], key: str, start: int, end: int) -> int | None:
    """The 1-based number of the first line in ``lines[start:end]`` that sets ``key`` (``key =``,
    ``"key" =``, ``key.sub =``, ``{key =`` inline, or a ``[...key...]`` table header)."""
    name = re.escape(key)
    quoted = rf"""(?:{name}|"{name}"|'{name}')"""
    pattern = re.compile(rf"""(?:^\s*|[{{,]\s*){quoted}\s*[=.]|^\s*\[+[^\]]*\b{name}\b""")
    for n in range(start, end):
        if pattern.search(lines[n]):
            return n + 1
    return None


def _id_line(lines: list[str], value: str, start: int, end: int, earlier: int) -> int | None:
    """The 1-based number of the line in ``lines[start:end]`` holding the ``earlier + 1``-th
    ``id = "value"``."""
    pattern = re.compile(rf"""(?:^|[{{,\s])id\s*=\s*(["']){re.escape(value)}\1""")
    count = 0
    for n in range(start, end):
        count += len(pattern.findall(lines[n]))
        if count > earlier:
            return n + 1
    return None
