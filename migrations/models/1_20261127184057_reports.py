"""The daily report's ledger: one row per reported day, for PostgreSQL and SQLite alike.

Written from Tortoise's schema SQL for each dialect. The unique ``day`` is
what lets only one worker claim a day's email.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

_POSTGRES = """
CREATE TABLE "daily_report" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "day" DATE NOT NULL UNIQUE,
    "status" VARCHAR(16) NOT NULL,
    "attempts" INT NOT NULL,
    "last_error" TEXT,
    "next_attempt_at" TIMESTAMPTZ NOT NULL,
    "sent_at" TIMESTAMPTZ,
    "created_at" TIMESTAMPTZ NOT NULL,
    "updated_at" TIMESTAMPTZ NOT NULL
);
COMMENT ON COLUMN "daily_report"."status" IS 'SENDING: SENDING\nSENT: SENT\nFAILED: FAILED\nABANDONED: ABANDONED';
COMMENT ON TABLE "daily_report" IS 'What became of one day''s report email.';
"""

_SQLITE = """
CREATE TABLE "daily_report" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "day" DATE NOT NULL UNIQUE,
    "status" VARCHAR(16) NOT NULL /* SENDING: SENDING\nSENT: SENT\nFAILED: FAILED\nABANDONED: ABANDONED */,
    "attempts" INT NOT NULL,
    "last_error" TEXT,
    "next_attempt_at" TIMESTAMP NOT NULL,
    "sent_at" TIMESTAMP,
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL
) /* What became of one day's report email. */;
"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    return _POSTGRES if db.capabilities.dialect == "postgres" else _SQLITE


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        DROP TABLE IF EXISTS "daily_report";"""


MODELS_STATE = (
    "eJztXeFz2jgW/1c0fNlkhs0kJE166c3NUEJbdhOSCeS2t2UHFFuAJ7bEWmIpt5f//d6TZG"
    "xsIJASCqm/NEZ6T7Z+T5b0e+/J/bsQCJf58qDie4yrwjn5u8BpwOAiVVMkBToYxOVYoOi9"
    "r0WdWOZeqpA62FKX+pJBkcukE3oD5QmOsg0RMMEZoSSgnu/xHnEoJyGjTv8d6XQGfajsdI"
    "gnyZB7fw5B0AmFlET1GXG9kDlKhOMDvJcrHLgZtLDeZk19W4keg8oQGv/yBxR73GVfmcSf"
    "XwpiwEIKGm0HwDBQ9Aog9cVcoPzgod31mO9OYeq5KKzL22o80GXvvV6Nqw9aFnt1D436w4"
    "DH8oOxgsefKHgG6h7j+BAM76DCIULNh75vbRKhb3oTi5huJHRc1qVDHw2G2uYB4rJCu12/"
    "brYb1Wa7XcgYM9JIGMIWOYLjQIBHlRqAHj7Cz/8olY6Pz0qHx6dv35ycnb15e/gWZPXzZq"
    "vOHs3DxGiZpjRmtY+1ehMfSMBoM4MQCx61DlXUaGlrxejrQZA1QKVPw9nwTxRSFoCupS0Q"
    "4b29Jgjo17bPeE/14efR0QJ0/12+rXwq3+4dHe1PQ1y3NSVdhWDH4GZeiWVBziiuB+yoIE"
    "Y7npA2DvfxEmgfzwX7OI01TjIrIGzFN4drobARVE9PloD19GQurliVAtYL2H9XnCSSOhuE"
    "+K5Z2VWUHViWAY02VVmcL6AGEZ2N9bRmCm3Xqh5EF7s4bUAH3Wvuj+3qsAD6Zu2q2miWr2"
    "7wdoGUf/oav3KzijUlXTpOle6dpsw0aYT8Vmt+IviT/H5dr2p4hVS9UN8xlmv+XsBnokMl"
    "2lyM2tRNLGRRaYTalNWHA/eZVp/WzK2+LVaPMEqYXT89bn+7D4ktGBbcU+dhREO3PVWToB"
    "tMStpjcsYG2Wp++PWW+VRjmx0Glq1cmVaWGAN2yG7LEHiMBn1UmgRTlMQ8NLNVQSlIl1AO"
    "mLj23ngni9YFUKXxLRuIcCb1S1YXF/E/FwXbYSz5JAv8rU8VuWcO3JCILkHm5tLxT5KYRg"
    "hDFpdlecuptXiLdzqcfVUwZSgWDPCvIX9I9xh3URkvnWEYAnMljk+9gIz6ns+ALDaq9Yta"
    "/WOnUySUuy2ulWgIJFcquJMKxxPRD+XaZfWi01mSOebEcCuJIYyh2WvSbPCt+KKFaOfo4Q"
    "JMcRlJ7eCkomo4Y6rGXXKVDwONWw1uQLnDMvjF2ttM9Qp2Gjgn9qLF4aKpfzZb3Lz558T8"
    "bfHy+3L9AtZQKJpcpuevpZj56TLMPL2iJ5j5aXq7befAGeaaO70kVZ6eZNZlo8OXnWRKRy"
    "dnJ2+PT08mc8ukZNGUEk0fMaA+larNwlCEWUibsOrMxnRa61kjfzv3LDO3qdXPzakdajRA"
    "967Kn/endqmX1/WPkXhiQFcur9+ncE+t6KvSiBnqr5BL7C53yFJGCXuzZxg6obYGA+/QS7"
    "dr9s0dQfPXrN10CeSOoB/R6mtwBL2km+PKRIQLM1wcUVVxkXsjSAg96dkoEwX7DIJrEFGC"
    "sL9YOCYmQE4Cqpw+xqYp6Xq+YmGR3DM1YoyTTgdYUWgdFZS7UMC4q39m3SAvcA/jMzEabW"
    "hPQndAqheKkSSjPrxGUKh9JkaGOH3Ke0y+sy6VnscZCZkjQle2uIc3o0MXnshhieZQ1v4i"
    "niL3Q2hLF0aypBuKgOx1OnUdr2/xIVeer0WiuL7ug9wvEimgj77QPpmfobDHoC0qH9DP0x"
    "VD6N/9WGtK6P0AelgmYFoGk8GkrQeokPAkkkA/8bZWQGOyrzHCSuubJH1PrpQmEBPdCPg8"
    "N2BLXUD4Qq3C5iL5bfZgbC2Rm7wNq27sE3qvcPXf3dU+u8kzC8uqBo61cvNutXntRmEqd2"
    "eGg/GXxnV9tqXnNpA2vOco8j/iw8r7UiYv/LM75A5a02xIPC4P8H7/Kmx+ICBgi6fb9Mya"
    "Mi42kJ5uLdaK9p5jokgtN8zaDTOC3sN7p5e1rGUaAfX9udu/tO6z3PRb5tuyW8Hj0tnpZP"
    "OHPxZt9xpX5cvLrI/ewgMLyjOBtZo5rDse+Cs0Kp+qF3eXNhq3SvwvUjwnk8sWv72r13VU"
    "0F60+E35roFC5m+Lf6jVa41POjZor1q8Uq5Xqpe6rcnldkQHpyn/CjHCrOLmIoVHL/umrC"
    "1SmHaBrBKCnaH6iiajtUEce2xWJRvTmnmkaJv5Rh4pmv9C7WbMII8U/YhW3+mU4W0bA+vJ"
    "GZ7e3C8A85qzpoB/loDUhFcaUXs7uW7OhnX1sKNBYX7scYLSkwHI9sRAT4ch7agmjhhCt6"
    "JkadtQkTywgSLDAUYPcRIkI0/1bRzRkDQb38vGHtfVMAYcK9iGiVUGnu+joyd6p43ix9vr"
    "uxvy/j9E0Qco69KQ+AK0MRJJuQ7ulQ5JIE2OdvmmRoDZY8SyK0IT7lSy03lHRn2h45c2aD"
    "kJ6JlHggKzXph2pO0c7LuJZ24iMeEcEOeSGn/UnmSY/m0tGYl3OvvfmggemXrVaOC03nqY"
    "WB4WLCihqL+aJSYqryZxdiM2SBzTZty16RbLo55QynF/Hu7SfsNhedAjjRzx5yHehUmbrT"
    "jRxzo56s9DnX0deOGqsCeUctyfh7uDMQF/5QE/pZZjvzz235R9mdmRZo0W8cFMzGchKdy5"
    "jeg8OgjFIR1NtvCpHTj03/iXsapSblTKF9XC4xpzWq3XYhavjB0aCyhlQuhJMglGNhmnwO"
    "qQ7env4rzTqZGdjufGR2uBEclezbWZnoNQ/OW5QLuALMksk1xLqwvO+mLWajI7NaBjwvX9"
    "gIx66twwO4yfF4GA6nO9LU67mNyKNhLdblGLaB0TFSYC9pma54qwaA8BUzIS4QMo9QUYDh"
    "rWWi0+OWZMlZX4SRKfUaCXe9SeOB4MJfBNTIUFwoqDwma1RvwUeKuEpuwNXI+5ePpZQDVx"
    "8RtWPRiPmOUKmDG/u3+AWESfujIJvtHXSbAgRGI7wEZ0lq0+AG2ShidQTfJwPeDCJj0X2+"
    "kKpNWRNHPRRqb3OjPXPi1gbrfhuhsaBZsyiziP8Zg2dXEEEgNz4glA18Zj5jHoL8mZyH5x"
    "7I9Mym1CJo42wyupP86V1MpzcLeObH/v73N9b5f+C3+ha3c+brQxkNf/baMdTJC5McfbC6"
    "shHqmdk5tljsdXP9/UbrHAXmxzSkx+YD4/MP8qzlnkB+bzNJk8TWanEyaWSZPJP5Pwyt9q"
    "TVtXDglPqb2i1NENu623KSL/wxgg47tewh/9QYTM6/Ff2fjlPdLbMbutxSednWnWAG38vw"
    "bs1hSzLLBTc+sUrvAEpH53eZly9m/sYxdlFnpOvzAjLmBriovCAjSWeSoqMB/TNX8H80fx"
    "vn4j3Z7vV517+GS+32/+oZPX4PYrvXmzhM8IpOY6jXRdymsEL9UKCFvxV4ju0eHhMh65w8"
    "P5LjmsSyUPCK5mLk3zzy8nVDZ/dvn7UJu1nVL+rl9uevw//MJ8xw=="
)
