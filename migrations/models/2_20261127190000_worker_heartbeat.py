"""Worker heartbeats, for /metrics and for knowing which workers are alive."""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    postgres = db.capabilities.dialect == "postgres"
    instant = "TIMESTAMPTZ" if postgres else "TIMESTAMP"
    json = "JSONB" if postgres else "JSON"
    return f"""
CREATE TABLE "worker_heartbeat" (
    "id" VARCHAR(128) NOT NULL PRIMARY KEY,
    "hostname" VARCHAR(255) NOT NULL,
    "pid" INT NOT NULL,
    "started_at" {instant} NOT NULL,
    "seen_at" {instant} NOT NULL,
    "stopped_at" {instant},
    "metrics" {json} NOT NULL
);
CREATE INDEX "idx_worker_hear_seen_at_d2ba44" ON "worker_heartbeat" ("seen_at");"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """DROP TABLE IF EXISTS "worker_heartbeat";"""


MODELS_STATE = (
"eJztXP9TIjkW/1dS/HJa5VqKjnrO1VUxiA63ipbg7dwOWxC7A3TZJGwnLOPt+b/fe0mabr"
    "pppFl0gOEXbZK8pPN5+fI+eS/9Z6EvXObL/bLvMa4K5+TPAqd9Bg+JnD1SoINBlI4Jij76"
    "uqgTlXmUKqAO1tShvmSQ5DLpBN5AeYJj2broM8EZoaRPPd/jXeJQTgJGnd5H0m4PepDZbh"
    "NPkiH3fh9CQScQUhLVY8T1AuYoETzvY1uucKAxqGG51Zr8lhJdBpkBVP71N0j2uMu+MYk/"
    "vxbEgAUUJFoOgGGg6Bag1FfzgOUHT62Ox3x3AlPPxcI6vaWeBzrtk9etcnWpy2KvHqFSf9"
    "jnUfnBs4LXHwt4Buou4/gSDFtQwRCh5kPftzoJ0Te9iYqYbsRkXNahQx8VhtLmBaK0QqtV"
    "u2206pVGq1VIKTOUiCnCJjmC40CAV5UagC6+wk9/LxaPjk6LB0cnZx+OT08/nB2cQVn9vu"
    "ms0xfzMhFapiqNWfWqWmvgCwkYbWYQYsKLlqGKGimtrQh9PQjSCij3aDAd/rFAQgPQtaQG"
    "QrxXVwV9+q3lM95VPfh5eDgD3X+X7sufS/c7h4e7kxDXbE5RZyHYEbipKTEvyCnB5YAdJk"
    "RoRwvSu8N9NAfaR5lgHyWxxkUmB8K2+PvhWii8C6onx3PAenKciStmJYD1+uy/OReJuMw7"
    "QvzQKK8ryg5sy4BGi6o0zheQg4hOx3pSMoG2a0X3w4d1XDagg+4t95/t7jAD+kb1plJvlG"
    "7usLm+lL/7Gr9So4I5RZ36nEjdOUmoaVwJ+aXa+EzwJ/n1tlbR8AqpuoFuMSrX+LWA70SH"
    "SrS4GLWoG9vIwtQQtQmtDwfuglqflNxqfVW0HmIUU7t+ezR/O08xEwwTHqnzNKKB25rIid"
    "ENJiXtMjnFQLaSlz/fM59qbNPDwLKVG1PLHGPADtlVGQIv4aAPU+NgiqLIQjOd1S/2kymU"
    "AyaubRtbCtEyVKkwhfaFWXuzeF8/VuhV4lciin1TRAJTJEoQ9gcLnolhjsDZlNND0kZJx/"
    "MVC/bII1MjxjhwN6looGDyA32j3IUExl39M80C36CNJm/ydttItKA+Cd2BUt1AjCQZ9WCQ"
    "QaKmkaYMcXqUwzj+qNNgE/WAlQK/FIErm9zDxujQhTdyWKw6LGt/EU+RxyHUpRPDsqQTiD"
    "7Zabdrmsg2+ZArz9dFQsKr+yB394gU0Ecf5jG0+xMkApElisonZL8dMYT+PT5rSQm9H0AP"
    "SwRUy2CqjOt6ggwJbyIJ9BObtQU0JrsaI8y0k5b0PJmLP8OrqqEeSyHwW9K8oqQZJ1Qa/w"
    "akZpjDtvxGsLhZG3HlS2NiDw4t3p2b0pfdiX34+rZ2FRaPWcjl69tPCct4PBtyWkhxuQ20"
    "j9bXHkqbwWZjyavgSGqr3pVWrzUUJg61pti0/6rf1qZrOrOCpOI9R5H/ER923jc7Y/hHZ8"
    "gd1KYxSDwu97G9f77VwcOMgYCAzV5ukytrQrlYQXK5tVgr2l1ERaHYVjFLV8wIeg/zTm9r"
    "ac3U+9T3M82/pOzrhuDqs0NrCh4VT0/Gxh/+mGXu1W9K19ehfZeCFjaUBYG1kltYk5abZT"
    "Tpc+MKH/Y1pFVonQKZm2a/Wel3PEGulz9XLh6uKxc5V41I8JyMH5v8/qFWq9auzol9aPK7"
    "0kMdC5n/TX5ZrVXrnzElfGrycqlWrlzrusaPSVo/l0PrZB6HVtIyiDm0TpKn1JOUP63ZzH"
    "mSFlxoriyk1MO3nSnFw+PT47Ojk+PxdBmnzJoz6emSPALJAe800Q1ajJYGcXRik5dsTEou"
    "gXCsGNKbxDe2vrTsCbWeXpWtL+1H1Ppa+9JWbQwsx5k2adzPAPOWs4aAP3NAatwr9bC+td"
    "w3p8Oa3+1oUMj2PY5RetUB2Ror6HU3pB3VxBFD6BYRHYJho7aiPfLEBooMB+g9xEWQjDzV"
    "s35EQ9Ksfy/te1xWxehwLGMdxlfZ93wfD3rCOW0Er+5vH+7Ip/8QRZ8grUMD4guQRk8k5d"
    "q5Vzwgfdnk+Fi6qxJg9uix7IjAuDuVbLc/klFPaP+ldVqOHXrmlSDB7BemHmk7B3Y38Uwj"
    "EjQHY4BySc151I5kDBqwmgyLt9u7c/oGM72AoarzegMn5ZbDxLZuwYISivr5NDEWeT86fL"
    "ABOojFLzPu2nCL+VGPCW1xXwx3aS83zA96KLFFfDHEO7Bos5wLfSSzRX0x1Nm3gRfkhT0m"
    "tMV9Mdwd9An4uQf8hNgW+/mxz8Gp04QxZZGmlRbywZTPZyYpXDtDNIsOQnJAR2MTPmGBQ/"
    "/N+TJmlUv1cumiUnhZYkyrPbWYxiujA40ZlDJW6FUyCUo2EafA6pDt6QtjH3VoZLvtuebC"
    "IfIkYESyW3VtpOcgEH94LtAuIEsyzSSXUquJW+VQTYsqxfoDG97qmajVeHRqnz4TrtsDMu"
    "qpc8Ps0H++BwQ0YJDc5LSDwa2oI9Hp7OkiWsZ4hYkAO1PzXBHsQQOwFYPoSARPINQToDio"
    "WEs1ORikyI6BqCpb4m+S+IwCvdyhxPGp1yeDoQS+iaGwQFhxUNio1pCfAm+VUJVtwPWYSx"
    "6ZIyCbuHi5swvjEaNcATPmd3b3EYvwDqgJ8A2v7WBCgMR2gJXoKFvsmw0aHkM1jsP1gAub"
    "8FyspyOQVoelmYs6Mr3Xkbn2bQFza4brbmgUbMgs4vws8aKqiyOQGJhjbwCy1h+TxaC/xl"
    "ciexX3t1TIbaxM5G2GKalvrcaltjG4K0e2v/fF1e99pP/GV1fX59bfu4G8/Et/axggc1ep"
    "XVRrV4V8iIdi58Q+NHm9UmucE/zb5Jelqo52Mf+bvPLlrnqPCfZhlUNirCExRYvZ0RoxkY"
    "3hKEuL0fCpVC0WBCJIQ5p9xWJSaqEJsZqepXe7Z5Ewi/M60aeIb6AnfX0959swmc0PmJgn"
    "TAaP4Re5TRWJbYPfVnpWa9qa2yU8IbZBoaPvfGy9Sh75H0YBqbPrOc6jL0XAvC7/mT2//Y"
    "n0aqxuSzmTTq80S4A2+pzeei0x8wI7sbZO4ApvQGoP19eJw/5X3C3Lcwz8os+KPzMaqEcw"
    "6QpTHATJInuzHAXm7LnVmyj9mscgG++5PpvAGM//rYTsQ6ypK/AGfNyueDbPyUfxLPvoA/"
    "Nmn8n2wJbRzznwjsts4KFh8cOHOXCHUpm467xE0NO0IZ0d7bR5RsXSDpu0R28hDjwpuYEc"
    "eJNIUbhJ5NVxJLZV8GorWInBYMF5HJfcnm2sspb7DPrq5PouRUxkNb5Jgc2u9Tcp/lKk2P"
    "KoS4mBXnuFKYzF5uzNIio0KvOW9CQXJ/lRAkf+ovGWTT8y781ns4/s+/Jb8pFBPnBS5UDY"
    "Ft9AdA8PDuah1AcH2ZQa8xJxz4Krqadq2VtcTOT9t7jvY7lsxmb28n8wsyYE"
)
