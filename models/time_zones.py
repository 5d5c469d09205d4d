"""Which time zone names a client may have: the canonical IANA names.

``zoneinfo.available_timezones()`` lists every file of the zone database
found on the machine, which includes names that are not time zones a person
lives in (``localtime``, the machine's own setting; ``Factory``, "local time
zone must be set") and ~250 links kept for compatibility (``Asia/Calcutta``,
``US/Eastern``). Stored names should be the ones the rest of the world uses
today, so the catalogue is read from the ``tzdata`` package's own source
(``tzdata.zi``, ``zone.tab``, ``zone1970.tab``), whatever the machine has:

- every ``Zone`` of the database, except ``Factory``;
- every name the country tables list (``Europe/Oslo`` is a link to
  ``Europe/Berlin`` in the data since 2022, but it is Norway's name);
- ``UTC``, the service's default (docs/sending.md, "The objects"), a link to ``Etc/UTC``.

A link outside these is refused with the name it stands for.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

__all__ = ["canonical_zones", "link_target"]

_NOT_A_PLACE = {"Factory"}
_DEFAULT = "UTC"


def _read(name: str) -> str:
    return resources.files("tzdata").joinpath("zoneinfo", name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _catalogue() -> tuple[frozenset[str], dict[str, str]]:
    zones: set[str] = set()
    links: dict[str, str] = {}
    for line in _read("tzdata.zi").splitlines():
        parts = line.split()
        if parts[:1] == ["Z"]:
            zones.add(parts[1])
        elif parts[:1] == ["L"]:
            links[parts[2]] = parts[1]
    for table in ("zone.tab", "zone1970.tab"):
        for line in _read(table).splitlines():
            if line and not line.startswith("#"):
                zones.add(line.split("\t")[2])
    return frozenset((zones - _NOT_A_PLACE) | {_DEFAULT}), links


def canonical_zones() -> frozenset[str]:
    """Every time zone name a client may have."""
    return _catalogue()[0]


def link_target(name: str) -> str | None:
    """The canonical name an old or alias name stands for, if it is one."""
    zones, links = _catalogue()
    target = links.get(name)
    # Links may chain through names that are not canonical themselves.
    for _ in range(5):
        if target is None or target in zones:
            return target
        target = links.get(target)
    return None
