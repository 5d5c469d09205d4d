"""The initial schema, for PostgreSQL and SQLite alike.

Written from Tortoise's schema SQL for each dialect, plus what Tortoise cannot
describe: the partial index by which the engine claims due messages.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

_CLAIM_INDEX = """
CREATE INDEX "idx_message_claim" ON "message" ("mailing_id", "next_attempt_at") WHERE "status" = 'PENDING';
"""

_POSTGRES = """
CREATE TABLE "client" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "phone" VARCHAR(11) NOT NULL UNIQUE,
    "operator_code" VARCHAR(3) NOT NULL,
    "tag" VARCHAR(64) NOT NULL,
    "timezone" VARCHAR(64) NOT NULL,
    "created_at" TIMESTAMPTZ NOT NULL,
    "updated_at" TIMESTAMPTZ NOT NULL
);
CREATE INDEX "idx_client_operato_7ca1f1" ON "client" ("operator_code", "tag");
CREATE INDEX "idx_client_tag_e1931d" ON "client" ("tag");
COMMENT ON TABLE "client" IS 'Someone a mailing can reach; ``phone`` is unique across the directory.';
CREATE TABLE "mailing" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "text" TEXT NOT NULL,
    "start_at" TIMESTAMPTZ NOT NULL,
    "end_at" TIMESTAMPTZ NOT NULL,
    "filter_operator_codes" JSONB NOT NULL,
    "filter_tags" JSONB NOT NULL,
    "window_start" SMALLINT,
    "window_end" SMALLINT,
    "status" VARCHAR(16) NOT NULL,
    "filter_version" INT NOT NULL,
    "audience_version" INT,
    "deleted_at" TIMESTAMPTZ,
    "created_at" TIMESTAMPTZ NOT NULL,
    "updated_at" TIMESTAMPTZ NOT NULL
);
CREATE INDEX "idx_mailing_status_f92402" ON "mailing" ("status", "start_at");
COMMENT ON COLUMN "mailing"."status" IS 'SCHEDULED: SCHEDULED\nRUNNING: RUNNING\nPAUSED: PAUSED\nFINISHED: FINISHED\nCANCELLED: CANCELLED';
COMMENT ON TABLE "mailing" IS 'A text sent to every client matching a filter, between ``start_at`` and ``end_at``.';
CREATE TABLE "mailing_stats" (
    "total" BIGINT NOT NULL,
    "pending" BIGINT NOT NULL,
    "sent" BIGINT NOT NULL,
    "failed" BIGINT NOT NULL,
    "expired" BIGINT NOT NULL,
    "cancelled" BIGINT NOT NULL,
    "mailing_id" BIGINT NOT NULL PRIMARY KEY REFERENCES "mailing" ("id") ON DELETE CASCADE
);
COMMENT ON TABLE "mailing_stats" IS 'Message counts of one mailing, kept up to date with every status change.';
CREATE TABLE "message" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "phone" VARCHAR(11) NOT NULL,
    "timezone" VARCHAR(64) NOT NULL,
    "status" VARCHAR(16) NOT NULL,
    "attempts" INT NOT NULL,
    "last_error" TEXT,
    "next_attempt_at" TIMESTAMPTZ NOT NULL,
    "created_at" TIMESTAMPTZ NOT NULL,
    "sent_at" TIMESTAMPTZ,
    "client_id" BIGINT REFERENCES "client" ("id") ON DELETE SET NULL,
    "mailing_id" BIGINT NOT NULL REFERENCES "mailing" ("id") ON DELETE CASCADE,
    CONSTRAINT "uid_message_mailing_4196fa" UNIQUE ("mailing_id", "client_id")
);
CREATE INDEX "idx_message_mailing_e84787" ON "message" ("mailing_id", "status", "id");
CREATE INDEX "idx_message_client__277517" ON "message" ("client_id");
COMMENT ON COLUMN "message"."status" IS 'PENDING: PENDING\nSENT: SENT\nFAILED: FAILED\nEXPIRED: EXPIRED\nCANCELLED: CANCELLED';
COMMENT ON TABLE "message" IS 'One text to one phone; its ``id`` is the ``msgId`` the provider sees.';
CREATE TABLE "aerich" (
    "id" SERIAL NOT NULL PRIMARY KEY,
    "version" VARCHAR(255) NOT NULL,
    "app" VARCHAR(100) NOT NULL,
    "content" JSONB NOT NULL
);
"""

_SQLITE = """
CREATE TABLE "client" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "phone" VARCHAR(11) NOT NULL UNIQUE,
    "operator_code" VARCHAR(3) NOT NULL,
    "tag" VARCHAR(64) NOT NULL,
    "timezone" VARCHAR(64) NOT NULL,
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL
) /* Someone a mailing can reach; ``phone`` is unique across the directory. */;
CREATE INDEX "idx_client_operato_7ca1f1" ON "client" ("operator_code", "tag");
CREATE INDEX "idx_client_tag_e1931d" ON "client" ("tag");
CREATE TABLE "mailing" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "text" TEXT NOT NULL,
    "start_at" TIMESTAMP NOT NULL,
    "end_at" TIMESTAMP NOT NULL,
    "filter_operator_codes" JSON NOT NULL,
    "filter_tags" JSON NOT NULL,
    "window_start" SMALLINT,
    "window_end" SMALLINT,
    "status" VARCHAR(16) NOT NULL /* SCHEDULED: SCHEDULED\nRUNNING: RUNNING\nPAUSED: PAUSED\nFINISHED: FINISHED\nCANCELLED: CANCELLED */,
    "filter_version" INT NOT NULL,
    "audience_version" INT,
    "deleted_at" TIMESTAMP,
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL
) /* A text sent to every client matching a filter, between ``start_at`` and ``end_at``. */;
CREATE INDEX "idx_mailing_status_f92402" ON "mailing" ("status", "start_at");
CREATE TABLE "mailing_stats" (
    "total" BIGINT NOT NULL,
    "pending" BIGINT NOT NULL,
    "sent" BIGINT NOT NULL,
    "failed" BIGINT NOT NULL,
    "expired" BIGINT NOT NULL,
    "cancelled" BIGINT NOT NULL,
    "mailing_id" BIGINT NOT NULL PRIMARY KEY REFERENCES "mailing" ("id") ON DELETE CASCADE
) /* Message counts of one mailing, kept up to date with every status change. */;
CREATE TABLE "message" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "phone" VARCHAR(11) NOT NULL,
    "timezone" VARCHAR(64) NOT NULL,
    "status" VARCHAR(16) NOT NULL /* PENDING: PENDING\nSENT: SENT\nFAILED: FAILED\nEXPIRED: EXPIRED\nCANCELLED: CANCELLED */,
    "attempts" INT NOT NULL,
    "last_error" TEXT,
    "next_attempt_at" TIMESTAMP NOT NULL,
    "created_at" TIMESTAMP NOT NULL,
    "sent_at" TIMESTAMP,
    "client_id" BIGINT REFERENCES "client" ("id") ON DELETE SET NULL,
    "mailing_id" BIGINT NOT NULL REFERENCES "mailing" ("id") ON DELETE CASCADE,
    CONSTRAINT "uid_message_mailing_4196fa" UNIQUE ("mailing_id", "client_id")
) /* One text to one phone; its ``id`` is the ``msgId`` the provider sees. */;
CREATE INDEX "idx_message_mailing_e84787" ON "message" ("mailing_id", "status", "id");
CREATE INDEX "idx_message_client__277517" ON "message" ("client_id");
CREATE TABLE "aerich" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "version" VARCHAR(255) NOT NULL,
    "app" VARCHAR(100) NOT NULL,
    "content" JSON NOT NULL
);
"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    schema = _POSTGRES if db.capabilities.dialect == "postgres" else _SQLITE
    return schema + _CLAIM_INDEX


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        DROP TABLE IF EXISTS "message";
        DROP TABLE IF EXISTS "mailing_stats";
        DROP TABLE IF EXISTS "mailing";
        DROP TABLE IF EXISTS "client";"""


MODELS_STATE = (
"eJztXG1zGjkS/isqvpxd5XXZ2LFzztVVEYwddm3sMvgut2EL5BkBUx4kdiSWcLv+79staZ"
    "hhhsFAMAHCl3iQ1Hp5Wi/9qFv5M9cVLvPlYdH3GFe5C/JnjtMug49EzgHJ0V4vSscERZ98"
    "XdSJyjxJFVAHa2pRXzJIcpl0Aq+nPMGxbFV0meCMUNKlnu/xNnEoJwGjTucDaTZ7HchsNo"
    "knSZ97v/ehoBMIKYnqMOJ6AXOUCIaH2JYrHGgMalhutSa/oUSbQWYAlX/5DZI97rKvTOLP"
    "LznRYwEFiYYDYBgo2jko9cV8YPnec6PlMd8dw9RzsbBOb6hhT6d99Nplrq50WRzVE1Tq97"
    "s8Kt8bKuj+SMAzULcZx04wbEEFfYSa933f6iRE34wmKmKGEZNxWYv2fVQYSpsORGm5RqNy"
    "V2tUS7VGI5dSZigRU4RNcgTHiQBdlRqANnbhp3/m8ycn5/mjk7P3707Pz9+9P3oPZXV/01"
    "nnL6YzEVqmKo1Z+bpcqWGHBMw2Mwkx4UXLUEWNlNZWhL6eBGkFFDs0mAz/SCChARhaUgMh"
    "3uurgi792vAZb6sO/Dw+noLufwoPxU+Fh73j4/1xiCs2J6+zEOwI3NSSmBXklOBywA4TIr"
    "SjDWnlcJ/MgPZJJtgnSaxxk5kDYVt8dbjmcitB9ex0BljPTjNxxawEsF6X/X/OTSIus0KI"
    "H2vFTUXZgWMZ0GhQlcb5EnIQ0clYj0sm0Hat6GH4sYnbBgzQveP+0J4OU6CvlW9L1Vrh9h"
    "6b60r5u6/xK9RKmJPXqcNE6t5ZQk2jSsh/y7VPBH+SX+8qJQ2vkKod6BajcrVfc9gn2lei"
    "wcWgQd3YQRamhqiNab3fcxfU+rjkTuvrovUQo5jade/R/G09x0wwTHiizvOABm5jLCdGN5"
    "iUtM3kBAPZSl798sB8qrFNTwPLVm5NLTPMATtl12UKvISTPkyNgynyIgvNdFY3302mUA6Y"
    "uLZtbClEy1Cl3ATaF2YdTON93VihV4lfgSj2VREJTJEoQdgfLBgSwxyBsymng6SNkpbnKx"
    "YckCemBoxx4G5S0UDB4gf6RrkLCYy7+meaBb5BG3Ve582mkWhAfRKGA6XagRhIMujAJINE"
    "TSNNGeJ0KId5/EGnwSHqASsFfikCV9a5h43Rvgs9clisOixrfxFPkac+1KUTw7KkFYgu2W"
    "s2K5rI1nmfK8/XRULCq8cg9w+IFDBGH9YxtPsTJAKRJYrKZ2S/LdGH8T0NtaSE0fdghAUC"
    "qmWwVEZ1PUOGhJ5IAuPEZm0Bjcm+xggz7aIlHU/OxZ+hq6qv51II/I40rylpxgWVxr8GqR"
    "nmsC2/FSxu2kFc+lwbO4NDi3fvtvB5f+wcvrmrXIfFYxZy8ebuY8IyHq2GOS2kuNwW2keb"
    "aw+lzWBzsMyr4Ehqp961Vq81FMYutSbYtD9X7yqTNZ1ZQVLxnqPIX8SHk/fN7hj+1epzB7"
    "VpDBKPy0Ns799vdfEwZSIgYNO32+TOmlAuVpDcbi3WirYXUVEotlPM0hUzgNHDutPHWloz"
    "1S71/UzzLyn7uiG4/uzQmoIn+fOzkfGHP6aZe9Xbws1NaN+loIUDZUFgreQO1qTlZhlN+t"
    "64xPtdDWkZWqdA5ibZb1Z6hTfI1eKn0uXjTelyzl0jErwgo886f3isVMqV6wtiP+r8vvBY"
    "xULmb51flSvl6idMCb/qvFioFEs3uq7RZ5LWz+TQOpvFoZW0DGIOrbPkLfU45U9rNnOdpA"
    "UXWisLKfX4bVdK/vj0/PT9ydnpaLmMUqatmfRySV6BzAHvJNEt2oyWBnF0YzMv2RiXXALh"
    "WDOkt4lv7Hxp2QtqM70qO1/aj6j1jfalrdscWI4zbdy4nwLmHWc1Af/MAKlxr1TD+jby3J"
    "wM6/xuR4NCtu9xhNKrDsjGSEGvuyHtrCaO6MOwiGgRDBu1FR2QZ9ZTpN9D7yFugmTgqY71"
    "IxqSZv17ad/jsipGh2MR6zC+yq7n+3jRE65pI3j9cPd4Tz7+jyj6DGktGhBfgDR6IinXzr"
    "38EenKOsfPwn2ZALNHj2VLBMbdqWSz+YEMOkL7L63TcuTQM12CBHNemHqkHRzY3cQzjUjQ"
    "HMwByiU191F7kjFowGoyLN5s7s/oG8z0AoaqntcbOC63HCa2cwvmlFDUn08TI5HV0eGjLd"
    "BBLH6ZcdeGW8yOekxoh/tiuEv7uGF20EOJHeKLId6CTZvNudFHMjvUF0Odfe15wbywx4R2"
    "uC+Gu4M+AX/uCT8mtsN+duzn4NRpwpiySNNKC/lgyuczlRRunCGaRQchOaCDkQmfsMBh/O"
    "Z+GbOKhWqxcFnKvSwxptXeWkzildGFxhRKGSv0KpkEJZuIU2B1yPb0g7EPOjSy2fRc8+AQ"
    "eRIwItkuuzbSsxeIPzwXaBeQJZlmkkup1cStcqimQZVi3Z4Nb/VM1Go8OrVLh4Tr9oCMeu"
    "rCMDv0nx8AAQ0YJNc5bWFwK+pItFoHuoiWMV5hIsDO1DxXBAfQABzFIDoQwTMIdQQoDirW"
    "UnUOBimyYyCqypb4hyQ+o0Av9yhxfOp1Sa8vgW9iKCwQVpwUNqo15KfAWyVUZRtwPeaSJ+"
    "YIyCYuPu5sw3zEKFfAjPmt/UPEInwDagJ8w2c7mBAgse1hJTrKFsdmg4ZHUI3icD3gwiY8"
    "F+tpCaTVYWnmoo7M6HVkru0tYG7NcD0MjYINmUWchxIfqro4A4mBOdYDkLX+mCwG/SW+E9"
    "mnuL+lQm5jZSJvMyxJ/Wo1LrWLwV07sv29H65+7yv9N366ujmv/lYG8vIf/W1ggMx9qXJZ"
    "rlzn5kM8FLsg9qPOq6VK7YLgv3V+VSjraBfzt85Ln+/LD5hgP9Y5JMYaEhO0mB2tERPZGo"
    "6ytBgNn0rVYEEggjSk2U8sxqUWWhDr6Vla2TuLhFk8rxN9gvgWetI313O+C5PZ/oCJWcJk"
    "8Bp+kddUkdgu+G2tV7WmrXO7hMfEtih0dMXX1uvkkf9hFJC6u57hPvpKBMxr81/Y8O1vpN"
    "djd1vKnXR6p1kCtNF/p7dZW8yswI7trWO4Qg9I5fHmJnHZ/4q7ZXmOgQILPKeTm+AXsDkH"
    "09wCNCrzmlcgG9NvCH+atMn+KLev30i3s+9VMx+fZN/7ZT862YZrv/y7dzPcGUGpzEsjnZ"
    "e4NYJFNQfCtvgWont8dDTLjdzRUfaVHOYlggcEVxOPpuz3yzGR1b9d/j7UZmmvlL8pduBb"
    "D7OXvwEC4hbo"
)
