"""Reading run configs: YAML files, ``--set`` overrides, and readable validation errors.

A validation error names the config path, the file and line it came from, what
was wrong and what is allowed, in one paragraph.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from frontier_core.config import RunConfig
from frontier_core.errors import ConfigError

# The embedded default: Llama-3.1-8B on one H100, replaying the bundled sample of
# the Azure LLM 2023 conversation trace (frontier_core/data/SOURCE.md).
DEFAULT_CONFIG_YAML = """\
model: llama-3.1-8b
deployment:
  clusters:
    - name: main
      gpu: h100-sxm
      replicas: 1
      tp: 1
      scheduler: {name: vllm, max_num_seqs: 256, max_num_batched_tokens: 8192}
workload:
  trace: {format: azure, path: "frontier:azure_conv_sample.csv"}
slo: {ttft_s: 0.5, tpot_s: 0.05}
seed: 0
"""


def _node_lines(node: yaml.Node, prefix: tuple = ()) -> dict[tuple, int]:
    """Map each config path (tuple of keys/indices) to its 1-based line in the YAML."""
    out = {prefix: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            out[prefix + (key,)] = k.start_mark.line + 1
            out.update(_node_lines(v, prefix + (key,)))
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out.update(_node_lines(v, prefix + (i,)))
    return out


#: The most nodes a config may expand to through YAML aliases (``*name``). A real config
#: has a few hundred; a few aliases nested in each other ("billion laughs") can expand to
#: billions, which pydantic and the line map would walk one by one.
MAX_YAML_NODES = 100_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


def check_yaml_nodes(root: yaml.Node, source: str) -> None:
    """Refuse what YAML allows but a config must not hold: a key given twice in one
    mapping (YAML keeps the last silently), an alias that contains itself, and aliases that
    expand to more than ``MAX_YAML_NODES`` nodes. Each is a ConfigError naming file:line."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise ConfigError(
                f"{source}:{node.start_mark.line + 1}: a YAML alias refers to a node that "
                "contains it, so the value would be infinitely deep; replace the alias "
                "(*name) with a copy of the value."
            )
        open_.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != _MERGE_TAG:
                    line = k.start_mark.line + 1
                    if k.value in seen:
                        raise ConfigError(
                            f"{source}:{line}: key {k.value!r} appears twice in the same "
                            f"mapping (first at line {seen[k.value]}); YAML would keep only "
                            "the last value silently. Remove one of them."
                        )
                    seen[k.value] = line
                total += size(k) + size(v)
        elif isinstance(node, yaml.SequenceNode):
            for v in node.value:
                total += size(v)
        if total > MAX_YAML_NODES:
            raise ConfigError(
                f"{source}:{node.start_mark.line + 1}: YAML aliases expand this value to "
                f"more than {MAX_YAML_NODES:,} nodes, far more than any run config holds; "
                "write the value out instead of nesting aliases."
            )
        open_.discard(key)
        sizes[key] = total
        return total

    size(root)


def dotted(loc: tuple) -> str:
    s = ""
    for part in loc:
        if isinstance(part, int):
            s += f"[{part}]"
        else:
            s += ("." if s else "") + str(part)
    return s or "(top level)"


def format_validation_error(
    err: ValidationError, source: str, lines: dict[tuple, int] | None = None, prefix: tuple = ()
) -> str:
    """One paragraph describing every problem pydantic found."""
    parts = []
    for e in err.errors()[:6]:
        # Drop union/discriminator tags pydantic inserts (e.g. 'lognormal') from the path.
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.endswith("]")))
        full = prefix + loc
        where = dotted(full)
        line = None
        if lines:
            probe = full
            while probe and probe not in lines:
                probe = probe[:-1]
            line = lines.get(probe)
        at = f"{source}:{line}" if line else source
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field (not allowed here)"
        elif e["type"] == "missing":
            msg = "required field is missing"
        inp = e.get("input")
        shown = f" (got {inp!r})" if e["type"] not in ("missing", "extra_forbidden") and not isinstance(inp, dict | list) else ""
        parts.append(f"{where} at {at}: {msg}{shown}")
    more = len(err.errors()) - 6
    tail = f"; and {more} more" if more > 0 else ""
    return (
        f"Invalid configuration: {'; '.join(parts)}{tail}. Fix these fields "
        "(`frontier config schema` prints every field with its type and default)."
    )


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_override(data: dict, assignment: str) -> None:
    """Apply one ``path.to.field=value`` (list items by index: ``clusters.0.tp=2``)."""
    if "=" not in assignment:
        raise ConfigError(
            f"--set {assignment!r} is not of the form path.to.field=value "
            "(e.g. --set deployment.clusters.0.tp=2)."
        )
    path, value = assignment.split("=", 1)
    set_field(data, path, _parse_value(value), f"--set {assignment!r}")


def set_field(data: dict, path: str, value: Any, what: str | None = None) -> None:
    """Set ``path.to.field`` (list items by index: ``clusters.0.tp``) of a config's data
    to ``value``; ``what`` names the override in errors (default: the path)."""
    what = what or f"override {path!r}"
    keys = [k for k in path.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"{what} names no field.")
    node: Any = data
    for i, k in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list):
            if not k.isdigit() or int(k) >= len(node):
                raise ConfigError(
                    f"{what}: {'.'.join(keys[:i]) or 'the config'} is a list of "
                    f"{len(node)} items; use an index from 0 to {len(node) - 1}."
                )
            if last:
                node[int(k)] = value
            else:
                node = node[int(k)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"{what}: {'.'.join(keys[:i])} is a value, not a section.")
        if last:
            node[k] = value
        else:
            nxt = node.get(k)
            if isinstance(nxt, str):
                nxt = {"name": nxt}  # a component or model given by name gains options
                node[k] = nxt
            if nxt is None:
                nxt = node[k] = {}
            node = nxt


def load_config(path: str | Path | None, overrides: Sequence[Override] = ()) -> RunConfig:
    """Read, override (``from_data``) and validate a run config; ``None`` means the
    embedded default."""
    if path is None:
        text, source, base = DEFAULT_CONFIG_YAML, "<default config>", Path.cwd()
    else:
        p = Path(path)
        try:
            text = p.read_text()
        except FileNotFoundError:
            raise ConfigError(
                f"Config file {str(p)!r} does not exist. Give the path of a YAML run config "
                "(examples/ has some), or no path for the embedded default."
            ) from None
        except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
            raise ConfigError(f"Config file {str(p)!r} cannot be read: {e}.") from None
        source, base = str(p), p.resolve().parent
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                check_yaml_nodes(node, source)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(
            f"Malformed YAML at {at}: {problem}. Check indentation and quoting on that line."
        ) from None
    except RecursionError:
        raise ConfigError(
            f"{source}: the YAML nests its values too deeply to read (thousands of levels); "
            "a run config needs a few levels."
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source} must hold a YAML mapping (model:, deployment:, workload: ...), "
            f"not a {type(data).__name__}."
        )
    lines = _node_lines(node) if node is not None else {}
    return from_data(data, overrides, source=source, base=base, lines=lines)


Override = str | tuple[str, Any]


def from_data(data: dict, overrides: Sequence[Override] = (), *, source: str = "<config>",
              base: str | Path | None = None, lines: dict[tuple, int] | None = None) -> RunConfig:
    """Validate a config's data (a mapping, as YAML gives it) after applying overrides:
    ``path=value`` strings as ``--set`` parses them, or ``(path, value)`` pairs whose
    value is used as it is. ``data`` is not modified. Relative paths resolve against
    ``base`` (default: the data's ``base_dir``, else the working directory)."""
    data = copy.deepcopy(data)
    for o in overrides:
        if isinstance(o, str):
            apply_override(data, o)
        else:
            set_field(data, str(o[0]), o[1])
    data.setdefault("base_dir", str(base if base is not None else Path.cwd()))
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source, lines or {})) from None


def validate_options(model: type[BaseModel], options: dict, where: str, provider: str) -> BaseModel:
    """Validate a component's options against its plugin's model (errors name both)."""
    try:
        return model.model_validate(options)
    except ValidationError as e:
        parts = []
        for err in e.errors()[:6]:
            loc = ".".join(str(p) for p in err["loc"]) or "(options)"
            msg = "unknown option" if err["type"] == "extra_forbidden" else err["msg"]
            parts.append(f"{where}.{loc}: {msg}")
        allowed = ", ".join(model.model_fields) or "none"
        raise ConfigError(
            f"Invalid options for {provider}: {'; '.join(parts)}. Options it accepts: {allowed}."
        ) from None
