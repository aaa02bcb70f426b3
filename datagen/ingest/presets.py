"""Named parameter sets that reproduce the papers' preprocessing where they state it.

>>> PRESETS["lu2024"]["user_core"], PRESETS["lu2024"]["item_core"]
(25, 10)
"""

from __future__ import annotations

DEFAULT_PARAMETERS = {"user_core": 5, "item_core": 5, "max_title_tokens": 64, "max_history": 10}

PRESETS: dict[str, dict] = {
    "lu2024": {
        "user_core": 25,
        "item_core": 10,
        "max_title_tokens": 64,
        "max_history": 10,
        "about": "Lu et al. 2024 (Steam, Movies & TV): user 25-core, item 10-core, titles <= 64 tokens, 10-item histories",
    },
    "cao2024": {
        "user_core": 5,
        "item_core": 5,
        "max_title_tokens": 64,
        "max_history": 20,
        "about": "Cao et al. 2024: 5-core, sliding window w = 20",
    },
    "instructrec": {
        "user_core": 5,
        "item_core": 5,
        "max_title_tokens": 64,
        "max_history": 20,
        "about": "InstructRec (Zhang et al. 2023): 5-core, histories of at most 20 items",
    },
}
