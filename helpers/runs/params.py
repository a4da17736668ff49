"""Quick mode: CI (and `make test`) sets LAB_QUICK=1 so every notebook shrinks its knobs and runs in
well under a minute; a notebook's own `quick` parameter, when not None, wins over the environment."""

import os


def quick_mode(requested: bool | None = None) -> bool:
    if requested is not None:
        return bool(requested)
    return os.environ.get("LAB_QUICK", "0").lower() in {"1", "true", "yes", "on"}
