"""Typed errors carrying what an operator needs to act.

Library code raises these; only the CLI edge turns them into messages and exit codes
(see ``fanout.cli.main.EXIT_CODES``). Each carries an ArangoDB-style ``error_num`` where
one fits, so state files and replies speak the same numbers.
"""

from __future__ import annotations

# ArangoDB error numbers (lib/Basics/errors.dat) used across fanout, each defined only here.
ERROR_SYS = 2  # TRI_ERROR_SYS_ERROR: an operating system call failed
ERROR_FILE_EXISTS = 27  # TRI_ERROR_FILE_EXISTS: a different file holds the name
# replication errors
ERROR_NO_RESPONSE = 1400
ERROR_INVALID_RESPONSE = 1401
ERROR_TARGET_ERROR = 1402
ERROR_INVALID_CONFIGURATION = 1410
ERROR_START_TICK_NOT_PRESENT = 1414
# fanout's own, in 1405's family: a record whose origin is the receiver's own id but from a
# history the receiver never had, i.e. two live nodes configured with one id.
ERROR_ID_COLLISION = 1420


class FanoutError(Exception):
    """Base of every error fanout raises on purpose."""

    error_num: int = 0
    hint: str | None = None


class ConfigError(FanoutError):
    """A configuration file is missing, unreadable, unsafe or invalid.

    The message always names the file and, where there is one, the key.
    """

    error_num = ERROR_INVALID_CONFIGURATION

    def __init__(self, path: object, key: str | None, problem: str, hint: str | None = None):
        self.path = str(path)
        self.key = key
        self.problem = problem
        self.hint = hint
        where = f"{self.path}: {key}: " if key else f"{self.path}: "
        super().__init__(where + problem)


class DatalogCorruptError(FanoutError):
    """A datalog file fails its framing or checksum; names the file and byte offset."""

    error_num = ERROR_INVALID_RESPONSE

    def __init__(self, path: object, offset: int, problem: str):
        self.path = str(path)
        self.offset = offset
        self.problem = problem
        super().__init__(f"{self.path}: offset {offset}: {problem}")


class GTSParseError(FanoutError, ValueError):
    """Input in Warp 10 format is malformed; names the 1-based line and the reason."""

    def __init__(self, line: int, reason: str):
        self.line = line
        self.reason = reason
        super().__init__(f"line {line}: {reason}")


class DiskFullError(FanoutError):
    """Publishing the datalog or committing the store ran out of space (ENOSPC/EDQUOT)."""


class SelectorError(FanoutError, ValueError):
    """A selector (``CLASSSEL{LABELSELS}``) or its regex is malformed."""


class StoreNotEmptyError(FanoutError):
    """A restore without ``replace`` found data or marks already in the store."""


class NodeIdMismatchError(ConfigError):
    """The store holds data written under another node id than the configured one."""
