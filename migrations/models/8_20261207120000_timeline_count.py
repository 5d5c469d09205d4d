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
    "eJztXW1zGjkS/isqvsROsS4bJ07OuboqbJOEXRu7bHzJbdgCMSNgyoPEzgwh3F7++3VLmv"
    "cZzBDsBTJf4kHq1svTrZdutZS/KmNhMts9OLctxr3KKfmrwumYwUcip0oqdDIJ0zHBo31b"
    "khohTd/1HGpgSQNquwySTOYajjXxLMGR9k6MmeCMUDKmlm3xITEoJw6jxugd6fUmI8js9Y"
    "jlkim3/pwCoeEI1yXeiBHTcpjhCWd+gHWZwoDKoIT1Fqvyu54YMsh0oPAvf0CyxU32jbn4"
    "80tFTJhDgaNrABgKimEFqL6oD6SfPHQHFrPNGKaWicQyvevNJzLtzBo2ufde0mKv+lCoPR"
    "3zkH4y96D5AYOloB4yjo1gWIPnTBFqPrVtLRMffdWbkER1I8JjsgGd2igw5FYNCNMq3W7r"
    "ut29a7S73UpKmD5HRBA6yRAcFQGa6koAhtiEX/5Rqx0fv6kdHp+8ff3qzZvXbw/fAq1sbz"
    "rrzXfVmBAtVZTErPmh2WpjgwRom1JCTPgueahHFZeUVoi+VIK0AM5H1MmGP2BISAC6lpSA"
    "j/fmimBMv3VtxofeCH4eHS1A99/12/OP9du9o6P9OMQtnVOTWQh2CG5qSCwLcopxPWD7CS"
    "Ha4YT07HAfL4H2cS7Yx0mscZIpgLAmfz5cK5VnQfXk1RKwnrzKxRWzEsBaY/bfgpNElOcZ"
    "Ib5vn28rygYsy4BGl3ppnC8gBxHNxjrOmUDb1KwH/sc2ThvQQfOa23O9OiyAvt28aty161"
    "c3WN3Ydf+0JX71dgNzajJ1nkjdO0mIKSiEfGq2PxL8SX6/bjUkvML1ho6sMaRr/17BNtGp"
    "J7pczLrUjCxkfqqPWkzq04m5otTjnKXUN0XqPkYRscvW4/Z38BDZgmFCnxoPM+qY3VhOxN"
    "xgrkuHzM3YIGvO97/dMptKbNNqoK2VK1XKEjqgVXZTVOC7r/R+ahRMURN5aKazxrVxMoVy"
    "wMTUdWNNGq0LMJXmt2winEzTL5pdXWT/mUjYdULKR63ATyPqkT4zoEIiBgQtN5POX7hEFU"
    "IYWnFpK285tg7v8F6Ps28eTBkeG0/wrzL+0Nxj3ERm/DSmjgOWKzFsao3JbGTZDIzFu0br"
    "otn60OtVCeVmh0sm6oCR63pQk+fMA9L39eZl46LXW9JyLA3DjTQMQYey16Rs8DX5ooVo68"
    "zDBZjiMpLYwbke9aYZUzXukht8Opa4NaECyg2Wwi/k3mRTr6KngVOiPzocPtryZ7vD1cg/"
    "Jepvh9fP6q0LWEMhKfhMzl9LWeYny1jmyRU9YpmfJLfbeg7MEFfu9BJleXySWZeMDp92kq"
    "kdvXrz6u3xyatgbglSFk0p/vQRAmpT1+syxxFOGtI2rDrZmMa5VtL8zdyzZG5TG5/bsR2q"
    "r6B7V/XP+7Fd6uV164NPHlHo88vrswTuiRW9qBmRwb6DtsT22g5pk9GFvdkKgo6wrUHAWz"
    "Totk2+pSMof83aTpdA6Qj6GaW+BkfQU7o5rtSJcCXDxeFnVRe5N8YRokc9G3XiwT6D4BpE"
    "PEHYV+bMiTogJ2PqGSM8m6ZkYNkec6qkz7wZY5z0emAVOdpRQbkJCYyb8mfaDfIEdSifie"
    "LoQnkudAeoho6YuWQ2gmEEidJnomiIMaJ8yNx32qUytDgjDjOEY7odbmFldGpCiwwWKQ5p"
    "9S9ieaQ/hbJkok9LBo4Yk71eryXP6zt8yj3LliT+ub7sg7tfJa6APtpC+mR+gcQhg7Ko+4"
    "B+noGYQv/6c8npQu8n0MNP0mkTq04MshsKRfQZ1iabWCXQIWM05Q8ucHS4gtrFVMsk0GVE"
    "OVKOMXVc4YQeJ9z6+/IBBkNARczscCWDgE32VaOUYPHQ8cW+WS5MZVIckggbB8X02ZDyd7"
    "5DC2rGenEMEIF9DCgx2RDjic08dkDaI+ZC5kwQNcGC2KjDIuJ8ARgI8fAA4AESp5gz12In"
    "Mwvm3qkHrXfYV0uBVkWvmDEiXCBC6FDjjJkuaqjLQLJC6s/4ABUt5PJVDAr0FVlVoV10kB"
    "vTMVkyiAEmSWjwEKZOV6mQXyQq1oiiS5CaUkngt9JeGC8mxn+AuEBzQI9QG2AgVTvcHyoz"
    "mPjFrKp8hA5RngpocZ3ArMAQfF8NERbQANACaCFqrCaQw2lfDi/M1G5tMgLRFYkwCX0k/p"
    "gtw0o21HuIKlTEEeDTb7Lza2N9AMFoKGoTRvh2cOO4vRvFtH2g9iRFBRxyleLdaPHqPWYs"
    "7CvDN/3r3XUrW9K5BSQFbxke+R+xYeV9KpFX/jmYcgOlqTaKsBk5wPr+VXl+RUDAFk+3yZ"
    "k1IVwsIDndaqw9OlxFRD5bKZi1C0ZtVLtyWUtL5m5MbTt3+5fkXemEZ8PconoreFx7cxJs"
    "/vDHou3e3VX98jJ9vKPhgQVlRWA1Zwnrlp8ZV+7OPzYu7i/1QW6Ro2Of8ZQEnx1+e99qyQ"
    "Nl/dHhN/X7OyRSfzv8fbPVvPsoj5X1V4ef11vnjUtZVvC5GQfLcW9RgePlNOPzHTIfPe1I"
    "Wdshc9IpVeT0PoN1hyaj9UOsvGbFfCgZzDuE8bO4VDIkIV2gKwoi4C3lsKocfB9qgckmyl"
    "KGCiUBDZ3CRf0Zcc4yjmGTXRplHEP+gNrOE+0yjuFnlPpWX2jZNB1Yz42WuP9gAZjXnLUF"
    "/LMEpOoE984vbyvXzWxYiwfFKBTyI2MClB4Nj+kGAno8SEZrNTHEFOMo9FUeXVCVPLCJR6"
    "YTjBzASTAaHKD8QDpGIB0Zs66CMRzmHMtQkTRjy7bRl+yPacX44fb6/oac/Yd49AHSBtQh"
    "tgBujHOgKkKjdkjGrrpBVL9pEmrbGOyAoRAyGMdze713ZDYSMj5Bh9QEMQOqSZCg1gtVjq"
    "s7B6Y9xp/I+Ba8DgWIc5cql/cexlv0elqSoLaOxdwDn63X2//R60q+yIsGHsT51mMulBEI"
    "FU94tKDVHLDsjM32zKbyhHFTBwUuj3qEqcR9Ndxd/dLQ8qD7HCXiqyE+gEmbFZzoQ54S9d"
    "VQZ98mllMU9ghTiftquBt4/GgXVvgYW4n98tj/0B2B1I40LTTfLkwdLy80DrduI5pnFkKy"
    "Q2fBFj6xA4f+Kz8zZp3X787rF43K9zXevNDeiyz7MnRsLDAtI0SPGpUgZHUvAqw7tPrk62"
    "3vZBR2r2eZYTg+WEbusGnqSPuJI75apgwPByMpZVGupdQFL1IEwfw6vn1M54TL+sAotbxT"
    "ZeFhqE4VDFH5+kSH0wFewUAZicGgSlRkvWITsMdEoxVMX2wjxrzrqPYO3+v1ZhRSu2CAdl"
    "UiGoOkTmbCeVB2q+dH2GMYvQAh44c8WsMu2Iy6zAxuKuzJ5xPBLOlD8guwnm1hPOyfQkNH"
    "oB+BIQvdfAm26sC2hiPvZbXDlckt0Owkek8cI8ZWQtrLA9KQlM5UXtyAxoEGYPA/0RQdHp"
    "jke2oKroa3Qfxwft+wrhK5Ps73CXTjK7DIRoI48Y6CNK4tRyPh32XQN1rgF/UScqWW+Q5d"
    "A7rZYMS7rMM1kKbFTHyoRIzRWaDaSuRtBSVwFI3EEm8auPJKhP9EpboU4r8qhgkOmvwTLF"
    "HejpH3PNTNkEB5ggstltvh6loNljMQ6HDwqZmJ1c6CWzARxLUQ5H0JyOpwfV8BNW+u7lLg"
    "mCRK8SItAF59UpXnU/gSnZv1S6F/pO47RGjCUB+YpOSjmj4Xfscmem65o8CPrvnKaxKb6a"
    "T4u1/f/LuPRJ74/c3tebrw2UBe/8uFWxjDeKMer6kUQ9xnOyU3yzx+0/h807zFBP2xyVGL"
    "5XM45XM4O3EVrnwO5ycLM0rabhm7WSHAquA5txMy2BMS7wP/Uwk5SHleKZ9dX1/GBHzWTI"
    "6t+6uzBiwiUrJAZHk5rsGo8Vt0tCV5y4C+TR5pWlr9jGchFxmMMbYyCnllF3wZTrljgXXL"
    "hFOWj73t9pya8NYVkXGCtZTzJstZOWsLh4bF2Mq1c9W1c5Mi834aAaTOsJc4l34vHGYN+W"
    "9s/vQn05sxu63lbDo906wB2vD/uNuuKWZZYGNzawxXaAFp3V9eJg79n+1pxk/yuPQjo47X"
    "h617JSNQIElSXRQwoI5fu6MY9WORA/l4L/VSG2O8+PNs+YcymTPwiicEm/Q/ztXeLuPJr7"
    "3Nd+Vj3uIzxhHsZeR3AbyjPDt4CFZ7/XoJ3IEqF3eZlwh+zlLp/Kjn3dtUrO3wREb2rGQU"
    "xTl30NexS0aRv0gUlXHIVgp4swXsiclkxXEc5Sx9G5ss5TGDvhqFnsKLsGzGM3hY7VY/g/"
    "dDEePrM13qDOQ6qmRYLDqnushQoSHNU5onhWySnyUQ8gc3b/nmR+5TXfnWR/4TXaXxkWN8"
    "4KAqgLAm30F0jw4PlzGpDw/zTWrMSxy+Cu5letXyl7gIy/MvcX/PzmU3FrPv/weUmlnF"
)
