"""The schema's root fields: each turns its input into plain values, calls
``models.services`` and maps the result (or the expected error) to a type."""
