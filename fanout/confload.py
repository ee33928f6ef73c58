"""One loading pipeline for every YAML file fanout reads.

Read, parse, check each key's type, resolve paths against the file's own directory,
reject unknown keys. Every problem becomes a ConfigError naming the file and the key, so
the process exits non-zero at start (supervisord shows FATAL) instead of failing later.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from fanout.errors import ConfigError

T = TypeVar("T")


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, None, f"invalid YAML: {where}{problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, None, f"expected a mapping at top level, got {type(data).__name__}")
    return data


class Section:
    """Typed access to one mapping of a config file; remembers which keys were used."""

    def __init__(self, path: Path, data: dict[str, Any], prefix: str = ""):
        self.file = Path(path)
        self.data = data
        self.prefix = prefix
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.file, self._key(key), problem)

    def _get(self, key: str, default: Any, required: bool) -> Any:
        self.used.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                raise self.error(key, "is required")
            return default
        return self.data[key]

    def typed(self, key: str, kind: type[T] | tuple[type, ...], default: Any = None,
              required: bool = False) -> Any:
        value = self._get(key, default, required)
        if value is default:
            return value
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a config saying `retries: true` is a mistake.
        if isinstance(value, bool) and bool not in kinds:
            raise self.error(key, f"must be {_names(kinds)}, got boolean {value!r}")
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds):
            raise self.error(key, f"must be {_names(kinds)}, got {type(value).__name__} {value!r}")
        return value

    def string(self, key: str, default: str | None = None, required: bool = False) -> Any:
        return self.typed(key, str, default, required)

    def integer(self, key: str, default: int | None = None, minimum: int | None = None,
                required: bool = False) -> Any:
        value = self.typed(key, int, default, required)
        if value is not None and minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum} (got {value})")
        return value

    def number(self, key: str, default: float | None = None, minimum: float | None = None,
               required: bool = False) -> Any:
        value = self.typed(key, float, default, required)
        if value is not None and minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum} (got {value})")
        return value

    def boolean(self, key: str, default: bool | None = None) -> Any:
        return self.typed(key, bool, default)

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> Any:
        value = self.string(key, default, required=default is None)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)} (got {value!r})")
        return value

    def path(self, key: str, default: str | None = None, required: bool = False) -> Path | None:
        """A path relative to the config file's own directory."""
        value = self.string(key, default, required)
        if value is None:
            return None
        if not value:
            raise self.error(key, "must not be empty")
        return (self.file.parent / os.path.expanduser(value)).resolve()

    def section(self, key: str, required: bool = False) -> Section:
        value = self._get(key, {}, required)
        if not isinstance(value, dict):
            raise self.error(key, f"must be a mapping, got {type(value).__name__}")
        return Section(self.file, value, f"{self._key(key)}.")

    def string_list(self, key: str, check: Callable[[str], bool] | None = None) -> list[str]:
        value = self._get(key, [], False)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, "must be a list of strings")
        if check is not None:
            for v in value:
                if not check(v):
                    raise self.error(key, f"invalid entry {v!r}")
        return list(value)

    def finish(self) -> None:
        """Reject keys nobody asked for: a typo must not silently become a default."""
        unknown = sorted(set(map(str, self.data)) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown key")


def _names(kinds: tuple[type, ...]) -> str:
    words = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a mapping"}
    return " or ".join(words.get(k, k.__name__) for k in kinds)
