"""The shared schedule of requests to the send API (``PROVIDER_MAX_RPS``), for PostgreSQL and SQLite alike.

One row per schedule: ``tat`` is the start of the next free slot in the
database's clock (seconds since the epoch); the ``granted_*`` columns hold the
last grant, which the reserving ``UPDATE`` returns. ``tasks/send_schedule.py``
is the only code that touches it. No Tortoise model: the models are unchanged.

UNLOGGED on PostgreSQL: a reservation then commits without waiting for the
WAL to reach the disk (a millisecond here, per reservation), and what a crash
loses is only this row, which comes back empty: the slots reserved just
before the crash are the only ones that could be granted twice.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect == "postgres":
        create = "CREATE UNLOGGED TABLE"
        comment = """
COMMENT ON TABLE "send_schedule" IS 'Start times of requests to the send API reserved by the workers (GCRA).';"""
    else:
        create, comment = "CREATE TABLE", ""
    return f"""
{create} "send_schedule" (
    "name" VARCHAR(128) NOT NULL PRIMARY KEY,
    "tat" DOUBLE PRECISION NOT NULL,
    "granted_at" DOUBLE PRECISION,
    "granted_from" DOUBLE PRECISION,
    "granted" INT
);{comment}"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """DROP TABLE IF EXISTS "send_schedule";"""


MODELS_STATE = (
"eJztXW1z2rgW/isavmwyw3YSkia56Z07Qwlt2U1IJpDb3i07oNgCPDESa4ml3N3+9z16MT"
    "Z+IZgSaqi/NEY6R7aeI0t6zjlW/yqNmE1c/qrmOoSK0iX6q0TxiMBFpKaMSng8DsplgcCP"
    "rhK1AplHLjxsyZb62OUEimzCLc8ZC4dRKdtiI8IoQRiNsOM6dIAsTJFHsDV8g3q98RAqez"
    "3kcDShzh8TELQ8xjkSQ4JsxyOWYN7slbyXzSy4GbSw2WZ1fVewAYFKDxr//DsUO9QmXwiX"
    "Pz+X2Jh4GDS6FoChoRiUQOqzvpDy46du3yGuvYCpY0thVd4Vs7Eqe+sMGlS8U7KyV4/QqD"
    "sZ0UB+PBPw+HMFR0M9IFQ+BJF3EN5EQk0nrmts4qOvexOI6G6EdGzSxxNXGkxq6wcIykrd"
    "bvO23W3V291uKWZMXyNkCFNkMSoHAjwqVwAM5CP8/K9K5eTkvHJ0cnbx+vT8/PXF0QXIqu"
    "eNV51/1Q8ToKWbUpg13jeabflADEabHoSy4KvSwQJrLWWtAH01COIGqA2xlwz/XCFiAeha"
    "1AI+3vk1wQh/6bqEDsQQfh4fL0H3v9X72ofq/cHx8eEixE1TU1FVEuwA3NgrsSrIMcXNgO"
    "0XBGgHE9LW4T5ZAe2TVLBPoljLSSYDwkZ8e7iWSltB9ex0BVjPTlNxlVURYJ0R+X/GSSKs"
    "s0WIH9q1XUXZgmUZ0OhiEcf5CmokoslYL2pG0LaN6iv/YhenDeigfUvdmVkdlkDfbtzUW+"
    "3qzZ283YjzP1yFX7VdlzUVVTqLlB6cRcw0bwR9bLQ/IPkT/XbbrCt4GRcDT90xkGv/VpLP"
    "hCeCdSmbdrEdWsj8Uh+1BatPxvaaVl/ULKyeF6v7GIXMrp5ebn/7T6EtmCx4xNbTFHt2d6"
    "EmRDcI53hAeMIG2Wi++/WeuFhhGx8Ghq3c6FZWGANmyOZlCHz1B71fGgaTVVgamvGqUWUU"
    "LcEUMLHNveWdDFpXQJVm92TMvETqF64uL+N/thTseoHksyzw4xAL9EgsuCFifSSZm41nP3"
    "GkG0FEsrg4y1tNrUM7tNej5IuAKUOQ0Vj+1eRP0j1CbaksL62J5wFzRZaLnRGaDh2XAFls"
    "1ZtXjeb7Xq+MMLU7VClhD0guF3An4c3mou+qjev6Va+3InMsiGEuiSGMoeQ1KRl8I75sId"
    "o5ergEU7mMRHZwXGAxSZiq5S65TicjhVsDboCpRWL4Bdp5pnolMw1cInPRoXDRVj/bHarf"
    "/Euk/3Zo9W21eQVrKBTNL6Pz10rM/GwVZh5d0UPM/Cy63TZzYIK5UqeXsMrzk8ymbHT0sp"
    "NM5fj0/PTi5Ox0PrfMS5ZNKf70EQDqYi66xPOYF4e0DatOMqaLWmuN/HzuWRK3qfVP7YUd"
    "qj9AD26qnw4XdqnXt833vnhoQNeub99GcI+s6FlpRIL6HnKJ3eUOccrIYW+2hqFDahsw8A"
    "69dLtm38IRlL5m7aZLoHAE/YhW34Aj6CXdHDc6IlxKcHH4VeVl7o1RSOhZz0YVCdhnILkG"
    "IcEQ+ZN4M6QD5GiEhTWUsWmM+o4riFdGj0RMCaGo1wNW5BlHBaY2FBBqq59xN8gL3EP7TL"
    "RGF9rj0B2QGnhsytF0CK8RFCqfiZZB1hDTAeFvjEtl4FCCPGIxz+Yd6sib4YkNT2SRUHNS"
    "1vxCjkCPE2hLFfqyqO+xETro9ZoqXt+hEyocV4n4cX3VB35YRpxBH12mfDI/Q+GAQFuYP0"
    "k/T59NoH+PM6XJofdj6GEVgWkJTAbztp6ggsOTcAT9lLc1AgqTQ4WRrDS+STR0eKY0gYDo"
    "+sAXuQE5dQHJFyoLm/Pl8+zByC2Rm78NWTf2Ib09XP13d7WPb/L0wpLVwIFWYd5cm9dsFB"
    "ZydxIcjL+0bpvJlk5tIGp4xxLob+TCyvtSJi/9uz+hlrSm3pA4lL+S9/tPafsDQQK2fLqN"
    "zqwR48oGotOtwVrgwTom8tUKw2zcMFPoPbx3almLW6Y1wq6buv2L6q7lps+Zb8tsBU8q52"
    "fzzZ/8sWy717qpXl/HffQGHlhQ1gTWaBaw7njgr9SqfahfPVybaFyW+J+veInmlx16/9Bs"
    "qqiguejQu+pDSwrpvx36rtFstD6o2KC56tBatVmrX6u25pf5iA4uUv4MMcK44vYihccv+6"
    "ZsLFIYdYFkCcEmqO7RZLQxiAOPTVaysahZRIryzDeKSFH6C7WbMYMiUvQjWn2nU4bzNgY2"
    "kzO8uLlfAuYtJW0G/6wAqQ6vtPz2dnLdTIY1e9hRo5Aee5yj9GwAsjs30PNhSDOqkcUm0C"
    "0/Wdo0VEZPZCzQZCyjh3ISRFNHDE0cUZM0E9+Lxx431bAMONZkGzpWOXJcVzp6/HdaK76/"
    "v324Q2//hwR+grI+9pDLQFtGIjFVwb3KERpxnaNdvWsgYPYyYtlnng53Ct7rvUHTIVPxSx"
    "O0nAf09CNBgV4vdDvcdA723cjRN+Ey4RwQpxxrf9QBJzL921jSF+/1Dr81Edw3ddZo4KLe"
    "ZphYERYsCSawm80Sc5W9SZzdig1Cn2kTapt0i9VRDykVuK+HOzdnOKwOuq9RIL4e4n2YtE"
    "nGiT7QKVBfD3XyZex4WWEPKRW4r4e7JWMCbuYBv6BWYL869t+UfRnbkcaN5vPBWMxnKSnc"
    "uY1oGh2EYg9P51v4yA4c+q/9y7KqVm3Vqlf10tcN5rQar0USrwwcGksoZUjoWTIJRtYZp8"
    "DqJNtT5+K8UamRvZ5jB5/WAiPig4ZtMj3HHvvTsYF2AVnicSa5kVaXfOsrs1bD2akjPENU"
    "3Q/IqCMuNbOT8fMyEFD1XW+H4r5MbpU2Yv1+WYkoHR0VRgz2mYrnMq9sPgLGaMq8J1AaMj"
    "AcNKy0OnT+mTEWRuInjlyCgV4eYPPF8XjCgW/KVFggrHJQmKxWn58Cb+XQlLmB7RBbfv3M"
    "oBrZ8gyrAYxHmeUKmBG3f/hKYuEfdaUTfP3TSWSBJ4ntWDaismzVB9A6aXgO1TwP1wEurN"
    "NzZTt9Jmm1L01saSPde5WZa54WMDfbcNUNhYJJmZU4z+Rn2tiWIxBpmENPALomHpPGoD+H"
    "ZyJz4tjvsZTbkEwQbYZXUh3OFdYqcnBzR7a/9/lc39ul/8IndO3O4UZbA3nzZxvtYILMnf"
    "68vZQNcV/tEt2t8nl8/dNd414WmIs8p8QUH8wXH8zvxXcWxQfzRZpMkSaz0wkTq6TJFMck"
    "7PlbrWhr5pDwgtoepY5u2W2dp4j8D2OAmO96BX/0O+YRZ0B/JbOX90jnY3bbiE86PtNsAN"
    "rgfw3YrSlmVWAX5tYFXOEJUPPh+jri7N/aYRcfla/4A8GeeIQtXSkhQBAVKS8LFGjfc3e4"
    "IP1cxCAd75WOTSCEZj8rId2JlTgDr+lRydMZ/pWLVTwflYt014esW+6THcJeRl1nwDuss4"
    "dOw8rr1yvgDlKpuKu6SNJT0pBOz3bav03FxpxNKqK3Fgde1NxDDrxPpMhfJLLaOFArDJxv"
    "Aws2Hq/5Hoc1C99Gnq08ItBXK9O5FCGVfJxJIW+702dS5OScvioBuw5LCYzF1JSXERUcyL"
    "wkPcnESX6UxJFv3Lyl04/U7+bT2Uf69/IF+UghH/KlyoCwEd9DdI+Pjlah1EdH6ZRa1kXy"
    "nhkViV619CUupLL9Je777Fz2YzH7+g9Uhovj"
)
