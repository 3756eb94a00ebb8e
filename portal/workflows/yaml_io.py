"""YAML export and import of definitions (PyYAML's safe loader: no tags, no objects), with errors on their line."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml

from portal.workflows.definition import Definition, DefinitionError, DefinitionInvalid, definition_parse

ERROR_YAML = "This is not valid YAML: {problem}"
MAX_YAML_CHARS = 200_000


def definition_to_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def _node_line(root: yaml.Node | None, path: tuple[str | int, ...]) -> int | None:
    """The 1-based line of the deepest node the path reaches."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = next((value for key, value in node.value if getattr(key, "value", None) == str(part)), None)
            if match is None:
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def definition_from_yaml(text: str) -> tuple[Definition, dict[str, Any]]:
    """Parse and check YAML text; DefinitionInvalid carries each error with its line."""
    if len(text) > MAX_YAML_CHARS:
        raise DefinitionInvalid([DefinitionError((), "", "(document)", f"Longer than {MAX_YAML_CHARS} characters.")])
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        line = mark.line + 1 if mark is not None else None
        raise DefinitionInvalid(
            [DefinitionError((), "", "(document)", ERROR_YAML.format(problem=problem), line)]
        ) from error
    try:
        definition = definition_parse(document)
    except DefinitionInvalid as invalid:
        raise DefinitionInvalid(
            [replace(error, line=_node_line(root, error.path)) for error in invalid.errors]
        ) from invalid
    return definition, document
