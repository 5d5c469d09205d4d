"""``rich`` as production has it: not installed (see __init__.py here)."""

raise ImportError("rich is a development tool: production processes run without it")
