"""A mailing's outcomes counted per second as they happen: ``timeline_count``.

``Mailing.timeline`` counted ``message`` rows by ``finished_at`` through an
index: 1.7-1.9 s for a mailing of a million messages, ten times that at ten
million. Now each row of ``timeline_count`` says how many of a mailing's
messages reached a final status in one second (``second``: seconds since the
epoch, rounded down), so a timeline reads one row per second in which
something finished, whatever the mailing's size, and sums them per bucket.

Triggers keep the counts, in the statement that changes a message's status,
so in its transaction, like ``mailing_stats``: +1 at ``finished_at`` when a
message becomes final (a new row already final too), -1 at its old
``finished_at`` when a cancelled one is revived. Triggers rather than code
beside each statement: every finalising statement, a test's and a backfill's
included, is counted, and the count of a revived message needs the
``finished_at`` the statement clears. On PostgreSQL one trigger per
statement (transition tables: +1 for each new row final, -1 for each old
row final, so a final row changed in another column counts nothing; no join
of the two, which cost 36 µs a row of every claim; one upsert per second
touched, not one per row); SQLite has only row triggers. Final messages without a time (before
``finished_at`` existed) are not counted: the timeline's ``undated`` is
``mailing_stats``' final counts minus these.

The backfill counts the rows already final, before the triggers exist, in
the same transaction. No Tortoise model: a composite primary key, which a
model cannot declare (``ALLOWED_EXTRAS`` in ``tests/support/schema.py``).
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

_TABLE = """
CREATE TABLE "timeline_count" (
    "mailing_id" INT NOT NULL REFERENCES "mailing" ("id") ON DELETE CASCADE,
    "second" BIGINT NOT NULL,
    "status" VARCHAR(9) NOT NULL,
    "n" BIGINT NOT NULL,
    PRIMARY KEY ("mailing_id", "second", "status")
);
"""

_POSTGRES_SECOND = "FLOOR(date_part('epoch', {0}.finished_at))::bigint"

_POSTGRES = (
    _TABLE
    + f"""
COMMENT ON TABLE "timeline_count" IS 'Messages of a mailing that reached a final status, per second (kept by triggers on message).';
INSERT INTO "timeline_count" ("mailing_id", "second", "status", "n")
    SELECT m.mailing_id, {_POSTGRES_SECOND.format("m")}, m.status, COUNT(*) FROM "message" m
    WHERE m.status <> 'PENDING' AND m.finished_at IS NOT NULL GROUP BY 1, 2, 3;
CREATE FUNCTION "timeline_count_updated"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO timeline_count (mailing_id, second, status, n)
    SELECT mailing_id, second, status, SUM(n) FROM (
        SELECT a.mailing_id, {_POSTGRES_SECOND.format("a")} AS second, a.status, 1 AS n
            FROM new_rows a WHERE a.status <> 'PENDING' AND a.finished_at IS NOT NULL
        UNION ALL
        SELECT b.mailing_id, {_POSTGRES_SECOND.format("b")}, b.status, -1
            FROM old_rows b WHERE b.status <> 'PENDING' AND b.finished_at IS NOT NULL
    ) changed GROUP BY 1, 2, 3 HAVING SUM(n) <> 0
    ON CONFLICT (mailing_id, second, status) DO UPDATE SET n = timeline_count.n + EXCLUDED.n;
    RETURN NULL;
END $$;
CREATE FUNCTION "timeline_count_inserted"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO timeline_count (mailing_id, second, status, n)
    SELECT a.mailing_id, {_POSTGRES_SECOND.format("a")}, a.status, COUNT(*) FROM new_rows a
        WHERE a.status <> 'PENDING' AND a.finished_at IS NOT NULL GROUP BY 1, 2, 3
    ON CONFLICT (mailing_id, second, status) DO UPDATE SET n = timeline_count.n + EXCLUDED.n;
    RETURN NULL;
END $$;
CREATE TRIGGER "message_timeline_updated" AFTER UPDATE ON "message"
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION "timeline_count_updated"();
CREATE TRIGGER "message_timeline_inserted" AFTER INSERT ON "message"
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION "timeline_count_inserted"();
"""
)

_POSTGRES_DOWN = """
DROP TRIGGER IF EXISTS "message_timeline_inserted" ON "message";
DROP TRIGGER IF EXISTS "message_timeline_updated" ON "message";
DROP FUNCTION IF EXISTS "timeline_count_inserted"();
DROP FUNCTION IF EXISTS "timeline_count_updated"();
DROP TABLE IF EXISTS "timeline_count";
"""

_SQLITE_SECOND = "CAST(strftime('%s', {0}.finished_at) AS INTEGER)"

_SQLITE = (
    _TABLE
    + f"""
INSERT INTO "timeline_count" ("mailing_id", "second", "status", "n")
    SELECT m.mailing_id, {_SQLITE_SECOND.format("m")}, m.status, COUNT(*) FROM "message" m
    WHERE m.status <> 'PENDING' AND m.finished_at IS NOT NULL GROUP BY 1, 2, 3;
CREATE TRIGGER "message_timeline_updated" AFTER UPDATE OF "status" ON "message"
    WHEN old.status <> new.status
BEGIN
    INSERT INTO timeline_count (mailing_id, second, status, n)
        SELECT new.mailing_id, {_SQLITE_SECOND.format("new")}, new.status, 1
        WHERE new.status <> 'PENDING' AND new.finished_at IS NOT NULL
        ON CONFLICT (mailing_id, second, status) DO UPDATE SET n = n + 1;
    UPDATE timeline_count SET n = n - 1
        WHERE old.status <> 'PENDING' AND old.finished_at IS NOT NULL
        AND mailing_id = old.mailing_id AND second = {_SQLITE_SECOND.format("old")}
        AND status = old.status;
END;
CREATE TRIGGER "message_timeline_inserted" AFTER INSERT ON "message"
    WHEN new.status <> 'PENDING' AND new.finished_at IS NOT NULL
BEGIN
    INSERT INTO timeline_count (mailing_id, second, status, n)
        SELECT new.mailing_id, {_SQLITE_SECOND.format("new")}, new.status, 1 WHERE TRUE
        ON CONFLICT (mailing_id, second, status) DO UPDATE SET n = n + 1;
END;
"""
)

_SQLITE_DOWN = """
DROP TRIGGER IF EXISTS "message_timeline_inserted";
DROP TRIGGER IF EXISTS "message_timeline_updated";
DROP TABLE IF EXISTS "timeline_count";
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
    "K24zFcISyPaykF7jDbjUw6NX3CUsUCMDQUY23OhQ9iBq2/L+ayDxZBZd6V07xTzaLILBMK"
    "7GaG+b4qSMwvjx9vML88fpw7v2BU1sI01kmKLU5jggc4nZ9usmjKXzOlscZhpwDCJvnBGV"
    "i7XyShs+a/BQeJuMwDQvyhe7mvKCcmyxWk1zvc0rI7cL2ZUbgsI8ched4sWJKhvorrOSl5"
    "gA7WGlTQvubu0rTAPVG76SxrtT6f2VtqPSlZab0sWs/o7Kr0BezZmKnJfJ9muiIujOSrX9"
    "8zN89haSzVtzqXvR3fo9A4mPdl8b8EM3n5ns2El2n2x6Pr62x/GxP2vSjlnR6AjxMqyZBZ"
    "8EEiRgStdpsuf/KJzoQwtOBXLfzNxHq8xwcDzr7gckCy6Qz/a8MfTX3GbRTGR2vueYxLYr"
    "nUmZLFxHEZGQxuWp2X7c7rwaBOKLd7XAlRz3WYL+FL0luGSV8121etl4PBhl6DygVQShcA"
    "tKHsOSkbfJN83US0d46ANZjiNJJaq/uSynnGUI32UIvPpwq3NnyAcout4BdJl9mor5lh4J"
    "yYhx6Hh6567fa47vnnRP/v8eZFs/MS5lAICh/T49dGPpizTXww6Rk95oM5W9mG1WNghrpy"
    "h5e4yN2DzK50dHK/g0zj8ZNnT56fnj0Jx5YwZN2QEgwfEaAu9WWfeV4WfaALs042pkmprV"
    "p+OdcsmcvU1m/d9Xsj4Sr16rrzOkie3jBJ4p6a0YuaERniB2hL7K/tsGoy+rA220LRMbHK"
    "EVRm/VaOoPw5az9dApUj6EfU+g4cQffp5mjbMOULybi1/JVlksZTKerrnB1OlLZ/y+6BPP"
    "6pNoM0ljOjLmaO3/hjhX3AvswcUE5FLCivVyGhxY3JBXGhMpvHZaK/mm64KcYmeYXuZuiO"
    "4PvMw4aZMWHno5wSO0C0d78Hrj1jOWSZ3GE7JbWVw6ZkVs6uXTYwVc7gCxmo5jts4jKVu6"
    "a4u6ay7rZSRbnX9avmXGwlWlDNSclKzaVTc0nst7eazV3LMNyCqPo6i20aS3TnznSTSJgR"
    "CPoQiRSEfWbekmhyO5lSaU2QV07JyHEl8+pkyOSCMU4GA5iFPbPRTLkNAYzb6nV1G/sevq"
    "H3vLVEH/LzoTqQauyJhU8WE+g3EKj2vHUaYo5xvDBb4mOHM+IxS3i23+MOfgxPSIOVy2LZ"
    "YVrzRhypj2CowCAtGXliSo4Gg47i2vf4nEvHVUkCTr6qg/+oTnwBdXSF2lP/BQLBAiaS+r"
    "e4Tz8Sc6jfcKkkfaj9DGr4UW26Jz4nRtkFhSyGDL+milgnUCFrMue3Pkj0uIbax1DHJlBl"
    "RDmWjzX3fOFFjAHcugn0AwKWgA8xu8e1DkIxVVeDUkpEInGBfXF8GLuUOlQiLBxkM2Rjyl"
    "8EhAT4Mn4X+wARWMcwJQZbYjpzmWTHpDthPkQuBNEjKqiNeiymzp8AAyFubwE8QOIcY5ZG"
    "7WThwGA7l1B6j312NGh1ZDVYE8IFIoSECM6Y7WML9RloVqj2Mz3GhhZJBU0MMgwasv6EoV"
    "hAbKKNqZxBDdxdQoHHMFb6ugkFWWLDmlCkdFBbNRJ4160X+ouNZzdAXdByoB1ha4COVO/x"
    "oKssYKQXi7rmeHhEr4yhxE0CowJD8INmiLBAC4BWACXEFmsSqO70SHUvjDS0JDIB1RU5HR"
    "LtcQd9tvLTlNRPg02oiF0QpD8Ii/ahjYKwNxRcK8blqpVi6VaKCYOAb2PzRVKVekutXrPG"
    "TBzQKnSAODeDchwnxu/t9XHiDGVJOt5GRYFYpZidK0YvVPtqWlvVzM2Uum7u8i8te0AO39"
    "PGs7Nw8Ycv65Z7N2+bV1ervl4DD0woWwJrJCtY95zzW7u5fNN6+eHKEHGLUH8DwXMSPvb4"
    "+w+djiIEm4cef9f8cIOJ9P8ef9XutG/eKFqweerxy2bnsnWl8gof0x6h70MMTnqLCmw4rQ"
    "o+HEn48f32lJ3tOKWdUgXgzRI9oMFo9xBrr1kxH0qG8AFh/CAulQxNKBfolooIZSs9bKuH"
    "wIdaYLCJi1RHPdKARk7hov6MpGTFQy+zS6NiKuR3qP1kJFc89B9R6zvgoX+/CwnK1gZ2cy"
    "NB0n+wBsxrzroC/mwAqd7BvQny28t5MxvW4qQYjUI+MyZE6U56TD9U0N0kGdOqiSXmyKMw"
    "VzGYjOrkls0kmc+QOYCDYJwcoP1AhiOwyozZVcZIh7nEPDSTZuq4LvqSgz6tBV+/v/7wjl"
    "z8m0h6C2Ej6hFXIGkZ6RqaodE4IVNf3wDRfNcm1HWR7IBUCEXGkf5g8IIsJkLxEwylJuQM"
    "6CJBgJ4vdD6+qRyY9sg/UfwWvM4CEOc+1S7vI+RbDAZGk9BsPYf5x4HYYPDoW6+bCFRelH"
    "iQlNuNuVAxEGpSyKxTIus0EYocjM32wKbyjHHbkAI3Rz0mVOG+He4+yzpGsg70QKJCfDvE"
    "RzBos4IDfSRTob4d6prcXhD2mFCF+3a4W7j96BZu8AmxCvvNsf+mMwIrK9JVpQV24cr28l"
    "rjcO8WonlmIQR7dBEu4VMrcKi/9jNj1GXz5rL5slX7usOTF8Z7kWVfRo6NNaZlLNGdRiUo"
    "WZ+LAOsOrT51z/oLxcIeDBw7ouODZeSP27Zh2s888dmxFT0cjKQVi3Inua65UTAk8xt++5"
    "QuCVffA6PUkefawkOqTh0MUXV7YI/TER7BQB2J0ahONLNeiwlYY6LRCqYvlhE574bV3uNH"
    "g8GCQmgfDNC+DkRjkDTJQni32m6VAcMeafQClIwPamsNq+Ay6jM7PKlwpH76AMySIQT/BN"
    "azK6zbR+dQ0Am0j9CQhWr+DLbqyHXGE/lzvce1yS3Q7CRmTZxIjKWEsJ+PSUul9Obq4AYU"
    "DloAkv+JSdHjoUl+pIfgenQaJKDzB4Z1naj5cfmIQDU+g4gqJKgTzygo49rxDBLBWQZzog"
    "XeqEzplTr2C3QNmGKDEe+zHjdA2g6z8aJJMUVngS4rUacVtMJRNQpLPGngqyMRwc9L6EMh"
    "wf3fGOChyT/DHNXpGHXOQ58MCRtPeKDF8XtcH6vBfEYCHQ5BambjZxfhKZgY4kYJ6rwERP"
    "W4Oa+ALW+pz1JgnyS64cVKALJmpyrPp/ApPjabX/lYvY8iliai+gS/bxhI4XNioOeOPwn9"
    "6EauOiZRTifF9/6djO+9JXLPv5SxPz8ysPf3K2RDXFIO4zt9+WitGOKB2Dl5t8nlpa3f3r"
    "XfY4B5KDNrsbrOtLrO9CCOwlXXmf5gNKO07ZaxmhUCrAqeczohQzyl8SHI35eSw5CH1fLF"
    "9fVVQsEX7XTf+vD2ogWTiNIsJHJkjmswbvwW7W1p2YrQV+aeZrQ1zLgWbp3BmBCrWMhbu+"
    "ArOuWBEes2oVNWl3Uf9pia8tYV0XFKtNJzmfWsnbWFqWEJsWru3HbuLBMz74dRwMoe9gb7"
    "0q+Ex5wx/5Ut739nuhyj2072pldHmh1AG/0+/X4NMZsCmxhbE7hCCUjnw9VVatP/wa5mvJ"
    "7J67msZfADTEx9HT1AzCT+aK9KtNMr9DflQVc7ij/yjuL3VcE97yeW7Oe0Szqn7e2K/Zto"
    "d7sb/z8quswbRj05ZDRzIkgnWTsjaPpNf5JIfZ9Tw6eazxgvfj1n/iCVOUccwAjVeL7JEN"
    "V4nj9GYdz6GWECPUM9F8A7LnOAJIh7+UmPWVaTzj/1cnhG5c42zxWzcyunWFKymmJLN8Um"
    "ndt6kiiq40isUnC5FSzFbLZlP45LVr7tMmt5yqCuVqGrUGMi5bgGFT+719eglsR0aTLQ66"
    "SWYbGYmPo6Q4VGaUrjufpR3FbfuHjLNz9yr2rMtz7yr2isjI8c4wM7VQGETfIDRPfxyckm"
    "JvXJSb5JjXEp8o3gMnNXJX+Ki4k8/BT3fVYuhzGZff0/CHaAKA=="
)
