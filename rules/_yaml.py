"""Turn YAML text into plain Python data plus a map from each field's path to its line.

We compose the node tree ourselves instead of calling ``yaml.safe_load`` because:

* errors must name a line, and only nodes keep their marks;
* money must never pass through ``float``: float-looking scalars stay strings so that
  ``Decimal("12.10")`` is exact;
* YAML 1.1 reads ``17:00`` as the sexagesimal integer 1020 and ``no`` as ``False``; a policy
  author means a time and a word, so only ``true``/``false`` are booleans and ``a:b`` stays text;
* PyYAML silently keeps the last of two duplicate keys, which would hide a typo'd stage.
"""

from __future__ import annotations

from typing import Any

import yaml

Path = tuple[str | int, ...]

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_NULL_TAG = "tag:yaml.org,2002:null"
# Aliases can make a small document expand exponentially ("billion laughs"); a policy is tiny.
_MAX_NODES = 20_000


class YamlShapeError(ValueError):
    """The YAML is well-formed but not usable data (duplicate or non-text key, too large)."""

    def __init__(self, message: str, *, line: int, path: Path) -> None:
        super().__init__(message)
        self.line = line
        self.path = path


def compose(text: str) -> tuple[Any, dict[Path, int]]:
    """Parse ``text`` into Python data and a ``path -> 1-based line`` map.

    Raises:
        yaml.YAMLError: the text is not valid YAML (``problem_mark`` says where).
        YamlShapeError: duplicate keys, non-scalar keys, or an oversized document.
    """
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: dict[Path, int] = {(): 1}
    if root is None:
        return None, lines
    builder = _Builder(lines)
    return builder.build(root, ()), lines


class _Builder:
    def __init__(self, lines: dict[Path, int]) -> None:
        self._lines = lines
        self._count = 0

    def build(self, node: yaml.Node, path: Path) -> Any:
        self._count += 1
        line = node.start_mark.line + 1
        if self._count > _MAX_NODES:
            raise YamlShapeError("document is too large for a policy", line=line, path=path)
        self._lines.setdefault(path, line)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return _scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlShapeError("keys must be plain text", line=line, path=path)
            # Keys stay text even when they look like numbers or booleans (currency "NO"...).
            key = str(key_node.value)
            if key in out:
                raise YamlShapeError(f"duplicate key {key!r}", line=line, path=(*path, key))
            # Point errors about a field at its key's line; the value usually sits on it too.
            self._lines[(*path, key)] = line
            out[key] = self.build(value_node, (*path, key))
        return out


def _scalar(node: yaml.ScalarNode) -> Any:
    value = str(node.value)
    if node.style is not None and node.style in "'\"|>":
        return value  # quoted or block text is always text
    tag = node.tag
    if tag == _NULL_TAG:
        return None
    if tag == _BOOL_TAG:
        lowered = value.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return value  # yes/no/on/off: YAML 1.1 surprises, keep the word
    if tag == _INT_TAG:
        if ":" in value:
            return value  # sexagesimal: "17:00" is a time, not 1020
        digits = value.replace("_", "")
        try:
            return (
                int(digits, 0) if digits.lstrip("+-")[:2].lower() in ("0x", "0o") else int(digits)
            )
        except ValueError:
            return value
    if tag == _FLOAT_TAG:
        return value  # exact decimal text; pydantic turns it into Decimal or rejects it for ints
    return value
