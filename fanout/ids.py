"""The id grammar, once: node ids (``id`` in fanout.yaml, a record's origin, a datalog
file name's suffix, ``ignore_origins``) and, with one more rule, target names.

A hyphen is allowed (ids like "paris-1"): it is unambiguous in datalog file names because
the seq before it has a fixed 20 digits.
"""

from __future__ import annotations

import re

ID_CHARS = "A-Za-z0-9_.-"
ID_PATTERN = f"[{ID_CHARS}]{{1,64}}"  # unanchored, for embedding in a larger pattern
ID_RE = re.compile(f"^{ID_PATTERN}$")
ID_RULE = f"1 to 64 of [{ID_CHARS}]"
