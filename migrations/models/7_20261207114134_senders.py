"""What a real sender needs besides sending (issue 23): a stop list, idempotency keys, an audit trail.

- ``opt_out``: the phones that said stop, kept by phone so that a client
  deleted and created again stays opted out; ``client.opted_out_at`` mirrors
  it for the audience statements (null on existing rows: nobody opted out).
- ``idempotency_key``: one row per (principal, key) of a mutation sent with
  an ``Idempotency-Key`` header, holding its response; in the database so
  that every API process shares them, across restarts.
- ``audit_entry``: who changed what, when, before and after; insert only.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

_POSTGRES = """
CREATE TABLE IF NOT EXISTS "audit_entry" (
"id" BIGSERIAL NOT NULL PRIMARY KEY,
"at" TIMESTAMPTZ NOT NULL,
"actor" VARCHAR(255) NOT NULL,
"actor_name" VARCHAR(255) NOT NULL,
"operation" VARCHAR(64) NOT NULL,
"object_type" VARCHAR(32) NOT NULL,
"object_id" VARCHAR(64) NOT NULL,
"changes" JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS "idx_audit_entry_object__ec873f" ON "audit_entry" ("object_type", "object_id");
CREATE INDEX IF NOT EXISTS "idx_audit_entry_actor_51f72e" ON "audit_entry" ("actor");
CREATE TABLE IF NOT EXISTS "idempotency_key" (
"id" BIGSERIAL NOT NULL PRIMARY KEY,
"principal" VARCHAR(255) NOT NULL,
"key" VARCHAR(255) NOT NULL,
"fingerprint" VARCHAR(64) NOT NULL,
"status_code" INT,
"response" TEXT,
"created_at" TIMESTAMPTZ NOT NULL,
"expires_at" TIMESTAMPTZ NOT NULL,
CONSTRAINT "uid_idempotency_princip_6dd1d3" UNIQUE ("principal", "key")
);
CREATE INDEX IF NOT EXISTS "idx_idempotency_expires_8bff94" ON "idempotency_key" ("expires_at");
CREATE TABLE IF NOT EXISTS "opt_out" (
"id" BIGSERIAL NOT NULL PRIMARY KEY,
"phone" VARCHAR(11) NOT NULL UNIQUE,
"opted_out_at" TIMESTAMPTZ NOT NULL
);
ALTER TABLE "client" ADD "opted_out_at" TIMESTAMPTZ;
"""

_POSTGRES_DOWN = """
ALTER TABLE "client" DROP COLUMN "opted_out_at";
DROP TABLE IF EXISTS "idempotency_key";
DROP TABLE IF EXISTS "audit_entry";
DROP TABLE IF EXISTS "opt_out";
"""

_SQLITE = """
CREATE TABLE IF NOT EXISTS "audit_entry" (
"id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
"at" TIMESTAMP NOT NULL,
"actor" VARCHAR(255) NOT NULL,
"actor_name" VARCHAR(255) NOT NULL,
"operation" VARCHAR(64) NOT NULL,
"object_type" VARCHAR(32) NOT NULL,
"object_id" VARCHAR(64) NOT NULL,
"changes" JSON NOT NULL
);
CREATE INDEX IF NOT EXISTS "idx_audit_entry_object__ec873f" ON "audit_entry" ("object_type", "object_id");
CREATE INDEX IF NOT EXISTS "idx_audit_entry_actor_51f72e" ON "audit_entry" ("actor");
CREATE TABLE IF NOT EXISTS "idempotency_key" (
"id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
"principal" VARCHAR(255) NOT NULL,
"key" VARCHAR(255) NOT NULL,
"fingerprint" VARCHAR(64) NOT NULL,
"status_code" INT,
"response" TEXT,
"created_at" TIMESTAMP NOT NULL,
"expires_at" TIMESTAMP NOT NULL,
CONSTRAINT "uid_idempotency_princip_6dd1d3" UNIQUE ("principal", "key")
);
CREATE INDEX IF NOT EXISTS "idx_idempotency_expires_8bff94" ON "idempotency_key" ("expires_at");
CREATE TABLE IF NOT EXISTS "opt_out" (
"id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
"phone" VARCHAR(11) NOT NULL UNIQUE,
"opted_out_at" TIMESTAMP NOT NULL
);
ALTER TABLE "client" ADD "opted_out_at" TIMESTAMP;
"""

_SQLITE_DOWN = """
ALTER TABLE "client" DROP COLUMN "opted_out_at";
DROP TABLE IF EXISTS "opt_out";
DROP TABLE IF EXISTS "audit_entry";
DROP TABLE IF EXISTS "idempotency_key";
"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    return _POSTGRES if db.capabilities.dialect == "postgres" else _SQLITE


async def downgrade(db: BaseDBAsyncClient) -> str:
    return _POSTGRES_DOWN if db.capabilities.dialect == "postgres" else _SQLITE_DOWN


MODELS_STATE = (
    "eJztXW132jgW/is6fJl0DpOTkjbtpnv2HJLSlp2U9DR0OztlDghbgDdGYmxRys72v++9kv"
    "yKTTAlqaH+ktiSriw9V2/36pH4qzYVNnP94+bcdmSLS29ZOyd/1TidMnjIiK2TGp3NojgM"
    "kHToquQU0/VZmHDoS49aEqJG1PUZBNnMtzxnJh3BIZTPXRcDhQUJHT6Ogubc+XPO+lKMmZ"
    "wwDyI+/QHBDrfZF+bj66eaGP6HWbIvlzOGXzOvjl2DlJ9q8F3h1f5Aqdltf+Qw105UDdJB"
    "lArXWUDYhTNuc/lKpcVyDfuWcOdTHqWfLeVE8FDA4RJDx4wzj0qGX5DeHCuK9TCwBHXXdY"
    "qS6MrEZGw2onNXxoAZ9qOwWr/fue72b1rdfr9WAEpLcFQDFNVXAIyxCL/8rdE4PX3WODk9"
    "e/70ybNnT5+fPIe0qryrUc++6sJEaOmsFGbt1+1OVykAdK3bAQZ8VTJUUi2ldBahT+Uq+i"
    "8BQelMWTb+WiKFv21EjoOHtDYC7NepIwiI9BG11gdQyBpsu+23rZtu8+07zH7q+3+6Cqdm"
    "t4UxDRW6TIUenT1KKiPMhHxsd98QfCW/X3daCk7hy7Gnvhil6/5ewzLRuRR9LhZ9ascxCY"
    "KDIEgaU6vqdCuavZxQL0ergUBKsQDQHqqyNqVf+i7jYzmB18bTp2t0+6/m+8s3zfdHkCql"
    "sI6Jaui4r6sI99VbUZhDqYfDulbbX6TFDOHAchUAOiF0gG367MkGQJ89ycUZo1IwJ2fxjY"
    "FOih0g1KeNDaA+beRCjVGZUGetfO4EOnP5cwgw775FWxPKx8xfBfmfN9edbJBjIukVjmNJ"
    "8j/iOv7KSnNng/TfR3NuIYpkOHdc6XD/GD/7j/savNcAjhAlFjsB0Edvm7+ldXB5dX2RXs"
    "VgBhegEFz3j25ja08MGFLrdkE9u78SIxoiL+1q1LQxTYdQTscKXqwx1s9YTpeuA+ZQLcOm"
    "MjH1dfaUFaW5y5Sq3YgpE5wRSqbUcQF+YlFOPEatyQsyGMygUbHBgDg+0Y2DUMsTvk/AvC"
    "K24zFcISyPaykF7jDbjUw6NX3CUsUCMDQUY23OqYfKmCulMacaQZE5JRTYzXzyfVWQmE0e"
    "P95gNnn8OHc2waisZWisSxRbisYED3DyPt1kiZS/QkpjjYNMAYRN8oMzp3a/JELXzH8LDh"
    "JxmQeE+EP3cl9RFjPAoi/msl/cvZaW3YGjzYzCZRk5DsnPZsECDPVVXM9JyQN0p9aggvY1"
    "d5emBe6J2k1nWav1+czeUutJyUrrZdF6RmdXpS9gvcYMS+b7NNPxcGEkX/36nrl57kljl7"
    "7Vuezt+B6FxsG8L/v+JRjFy/dsJrxMIz8eXV9n6duYsO9FKe+09z9OqCRDZsEHiRgRtNFt"
    "uvzJJzoTwtBeX7XnNxPr8R4fDDj7gssByaYz/K/NfDTsGbdRGB+tuecxLonlUmdKFhPHZW"
    "QwuGl1XrY7rweDOqHc7nElRD3XYb6EL0lvGSZ91WxftV4OBhv6CCoXQCldANCGsuekbPBN"
    "8nUT0d45AtZgitNIaq3uSyrnGUM12kMtPp8q3NrwAcottoJfJF1mo75mhoFzYh56HB666r"
    "Xb47rnnxP9v8ebF83OS5hDISh8TI9fG/lgzjbxwaRn9JgP5mxl01WPgRnqyh1e4iJ3DzK7"
    "0tHJ/Q4yjcdPnj15fnr2JBxbwpB1Q0owfESAutSXfeZ5WWSBLsw62ZgmpbZq+eVcs2QuU1"
    "u/ddfvhISr1KvrzusgeXp7JIl7akYvakZkiB+gLbG/tsOqyejD2mwLRcfEKkdQmfVbOYLy"
    "56z9dAlUjqAfUes7cATdp5ujbcOULyTj1vJXlkkRT6Wor3N2OFHa/i27B6r4p9oM0ljOjL"
    "qYOX7jjxWuAfsyc0A52BUqYkE5vQoJLW5MLogLldk8LhPZ1XTDTTE2ySt0N0N3BN9nHjbM"
    "jAk7H+WU2AGivfs9cO0ZyyHL5A7bKamtHDYls3J27bKBqXIGX8hANd9hE5ep3DXF3TWVdb"
    "eVKsq9rl8152Ir0YJqTkpWai6dmktiv73V3O1ahuEWRNXXWWzTWKI7d6abRMKMQNCHSKQg"
    "7DPzlkRT2cmUSmuCLHJKRo4rmVcnQyYXjHEyGMAs7JmNZsptCGDcVq+r29j38A29560l+p"
    "CfD9WBVGNPLHyymEC/gUC1563TEHNo44XZEh87nBGPWcKz/R538GN4HhqsXBbLDtOaN+JI"
    "feBCBQZpycgTU3I0GHQUs77H51w6rkoSMPBVHfxHdeILqKMr1J76LxAIFjCR1L/FffqRmE"
    "P9hksl6UPtZ1DDj2rTPfE5McouKGQxZPg1VcQ6gQpZkzm/9UGixzXUPoY6NoEqI8qxfKy5"
    "5wsvYgzg1k2gHxCwBHyI2T2udRCKqboalFIiEokL7Ivjw9il1KESYeEgmyEbU/4iICTAl/"
    "G72AeIwDqGKTHYEtOZyyQ7Jt0J8yFyIYgeUUFt1GMxdf4EGAhxewvgARLnGLM0aicLBwbb"
    "uYTSe+yzo0GrI6vBmhAuECEkRHDGbB9bqM9As0K1n+kxNrRIKmhikGHQkPUnDMUCYhNtTO"
    "UMauDuEgo8hrHS100oyBIb1oQipYPaqpHAu2690F9sPKkB6oKWA+0IWwN0pHqPB11lASO9"
    "WNQ1x8MjemUMJW4SGBUYgh80Q4QFWgC0AightliTQHWnR6p7YaShJZEJqK7IWZBojzvos5"
    "WfpqR+GmxCReyCIP1BWLQPbRSEvaHgWjEuV60US7dSTBgEfBubL5Kq1Ftq9Zo1ZuKAVqHj"
    "wrkZlOPwMH5vrw8PZyhL0vE2KgrEKsXsXDF6odpX09qqZm6m1HVzl39p2QNy+J42np2Fiz"
    "98Wbfcu3nbvLpa9fUaeGBC2RJYI1nBuuec39rN5ZvWyw9XhohbhPobCJ6T8LHH33/odBQh"
    "2Dz0+LvmhxtMpP/3+Kt2p33zRtGCzVOPXzY7l60rlVf4mPYIfR9icNJbVGDDaVXw4UjCj+"
    "+3p+xsxyntlCoAb5boAQ1Gu4dYe82K+VAyhA8I4wdxqWRoQrlAt1REKFvpYVs9BD7UAoNN"
    "XKQ66pEGNHIKF/VnJCUrHnqZXRoVUyG/Q+0nI7niof+IWt8BD/37XUhQtjawmxsJkv6DNW"
    "Bec9YV8GcDSPUO7k2Q317Om9mwFifFaBTymTEhSnfSY/qhgu4myZhWTSwxRx6FuYrBZFQn"
    "t2wmyXyGzAEcBOPkAO0HMhyBVWbMrjJGOswl5qGZNFPHddGXHPRpLfj6/fWHd+Ti30TSWw"
    "gbUY+4AknLSNfQDI3GCZn6+gaI5rs2oa6LZAekQigyjvQHgxdkMRGKn2AoNSFnQBcJAvR8"
    "ofPxTeXAtEf+ieK34HUWgDj3qXZ5HyHfYjAwmoRm6znMPw7EBoNH33rdRKDyosSDpNxuzI"
    "WKgVCTQmadElmniVDkYGy2BzaVZ4zbhhS4OeoxoQr37XD3WdYxknWgBxIV4tshPoJBmxUc"
    "6COZCvXtUNfk9oKwx4Qq3LfD3cLtR7dwg0+IVdhvjv03nRFYWZGuKi2wC1e2l9cah3u3EM"
    "0zCyHYo4twCZ9agUP9tZ8Zoy6bN5fNl63a1x2evDDeiyz7MnJsrDEtY4nuNCpByfpcBFh3"
    "aPWpe9ZfKBb2YODYER0fLCN/3LYN037mic+OrejhYCStWJQ7yXXNjYIhmd/w26d0Sbj6Hh"
    "iljjzXFh5SdepgiKrbA3ucjvAIBupIjEZ1opn1WkzAGhONVjB9sYzIeTes9h4/GgwWFEL7"
    "YID2dSAag6RJFsK71XarDBj2SKMXoGR8UFtrWAWXUZ/Z4UmFI/VDB2CWDCH4J7CeXWHdPj"
    "qHgk6gfYSGLFTzZ7BVR64znsif6z2uTW6BZicxa+JEYiwlhP18TFoqpTdXBzegcNACkPxP"
    "TIoeD03yIz0E16PTIAGdPzCs60TNj8tHBKrxGURUIUGdeEZBGdeOZ5AIzjKYEy3wRmVKr9"
    "SxX6BrwBQbjHif9bgB0naYjRdNiik6C3RZiTqtoBWOqlFY4kkDXx2JCH5MQh8KCe7/xgAP"
    "Tf4Z5qhOx6hzHvpkSNh4wgMtjt/j+lgN5jMS6HAIUjMbP7sIT8HEEDdKUOclIKrHzXkFbH"
    "lLfZYC+yTRDS9WApA1O1V5PoVP8bHZ/KbH6n0UsTQR1Sf4NcNACp8TAz13/EnoRzdy1TGJ"
    "cjopvvfvZHzvLZF7/qWM/fmRgb2/XyEb4pJyGN/py0drxRAPxM7Ju00uL2399q79HgPMQ5"
    "lZi9V1ptV1pgdxFK66zvQHoxmlbbeM1awQYFXwnNMJGeIpjQ9B/r6UHIY8rJYvrq+vEgq+"
    "aKf71oe3Fy2YRJRmIZEjc1yDceO3aG9Ly1aEvjL3NKOtYca1cOsMxoRYxULe2gVf0SkPjF"
    "i3CZ2yuqz7sMfUlLeuiI5TopWey6xn7awtTA1LiFVz57ZzZ5mYeT+MAlb2sDfYl34lPOaM"
    "+a9sef870+UY3XayN7060uwA2ujX6PdriNkU2MTYmsAVSkA6H66uUpv+D3Y14/VMXs9lLY"
    "MfYGLq6+gBYibxR3tVop1eob8pD7raUfyRdxS/rwrueT+xZD+nXdI5bW9X7N9Eu9vd+P9R"
    "0WXeMOrJIaOZE0E6ydoZQdNv+pNE6vucGj7VfMZ48es58wepzDniAEaoxvNNhqjG8/wxCu"
    "PWzwgT6BnquQDecZkDJEHcy096zLKadP6pl8MzKne2ea6YnVs5xZKS1RRbuik26dzWk0RR"
    "HUdilYLLrWApZrMt+3FcsvJtl1nLUwZ1tQpdhRoTKcc1qPjZvb4GtSSmS5OBXie1DIvFxN"
    "TXGSo0SlMaz9WP4rb6xsVbvvmRe1VjvvWRf0VjZXzkGB/YqQogbJIfILqPT042MalPTvJN"
    "aoxLkW8El5m7KvlTXEzk4ae477NyOYzJ7Ov/ATG0edk="
)
