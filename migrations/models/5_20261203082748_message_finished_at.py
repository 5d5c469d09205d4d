"""When each message reached its final status: ``message.finished_at``.

A failed, expired or cancelled message carried no time, so the daily report
could only give a mailing's failure reasons, never the day's, and a
mailing's timeline could not be drawn from its rows. ``finished_at`` is set
by every statement that finalises a message (and cleared when a cancelled
one is revived); the index (mailing, finished_at, status) answers a
timeline from the index alone.

Rows already final: a sent message finished when it was sent, an expired
one at its mailing's end; for failed and cancelled ones the time is not
known, and stays NULL (a timeline leaves them out).
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

_POSTGRES = """
ALTER TABLE "message" ADD "finished_at" TIMESTAMPTZ;
UPDATE "message" SET "finished_at" = "sent_at" WHERE "status" = 'SENT';
UPDATE "message" SET "finished_at" = g."end_at" FROM "mailing" g
    WHERE g."id" = "message"."mailing_id" AND "message"."status" = 'EXPIRED';
CREATE INDEX IF NOT EXISTS "idx_message_mailing_3a2598" ON "message" ("mailing_id", "finished_at", "status");
"""

_POSTGRES_DOWN = """
DROP INDEX IF EXISTS "idx_message_mailing_3a2598";
ALTER TABLE "message" DROP COLUMN "finished_at";
"""

_SQLITE = """
ALTER TABLE "message" ADD "finished_at" TIMESTAMP;
UPDATE "message" SET "finished_at" = "sent_at" WHERE "status" = 'SENT';
UPDATE "message" SET "finished_at" = g."end_at" FROM "mailing" g
    WHERE g."id" = "message"."mailing_id" AND "message"."status" = 'EXPIRED';
CREATE INDEX "idx_message_mailing_3a2598" ON "message" ("mailing_id", "finished_at", "status");
"""

_SQLITE_DOWN = """
DROP INDEX IF EXISTS "idx_message_mailing_3a2598";
ALTER TABLE "message" DROP COLUMN "finished_at";
"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    return _POSTGRES if db.capabilities.dialect == "postgres" else _SQLITE


async def downgrade(db: BaseDBAsyncClient) -> str:
    return _POSTGRES_DOWN if db.capabilities.dialect == "postgres" else _SQLITE_DOWN


MODELS_STATE = (
    "eJztXf9z2jgW/1c0/LJJh80kpE1y6c3NkIS27CYkk5Brb8sOCFuAJ0ZibVPK7fV/v/ckGX"
    "8nmBIK1L80tvyeLH2eLOnz3kP9uzQUJrPdg0vbYtwrnZO/S5wOGVzEnpRJiY5GQTkWeLRr"
    "S1EjkOm6nkMNrKlHbZdBkclcw7FGniU4yj6IIROcEUqG1LIt3icG5cRh1Bi8JZ3OaAAPOx"
    "1iuWTMrb/GIGg4wnWJN2DEtBxmeMKZHuC7TGHAy6CG1Varnrc90Wfw0IHKP/8JxRY32Vfm"
    "4u3nkhgxh4JG2wAwFBT9Ekh9VhcoP3pq9yxmmxFMLROFZXnbm45k2YXVr3PvnZTFXnWhUn"
    "s85IH8aOpB82cKloK6zzg2guEbPGeMUPOxbWub+Oir3gQiqhshHZP16NhGg6G2akBQVmq3"
    "G7fN9kOt2W6XEsb0NUKG0EWG4DgQoKmuBKCPTfj1H5XK8fFp5fD45OzN69PTN2eHZyAr25"
    "t8dPpNNSZAS1UlMau/rzea2CABo00NQiz4JnWoR5WWtFaAvhwESQNcDqiTDv9MIWYB6Frc"
    "Aj7em2uCIf3athnvewO4PTqag+6/q/eXH6r3e0dH+1GIG/pJRT5CsANwE5/EoiAnFFcDtl"
    "8QoB1MSGuH+3gBtI8zwT6OY42TTA6Etfj6cC2V1oLqyesFYD15nYkrPooBaw3Zf3NOEmGd"
    "NUL82LzcVpQNWJYBjTb1kjhfwRNENB3rqGYMbVOrHvgX2zhtQAfNW25P9eowB/pm/ab20K"
    "ze3OHrhq77ly3xqzZr+KQiS6ex0r2TmJlmlZCP9eYHgrfkj9tGTcIrXK/vyDcGcs0/Stgm"
    "OvZEm4tJm5qhhcwv9VGLWH08Mpe0elSzsPqmWN3HKGR22Xrc/vaeQlswLOhS42lCHbMdeR"
    "KiG8x1aZ+5KRtkrfnu93tmU4ltchhotnKjallgDOghuylD4Js/6P3SMJiiIrLQTD4aVobx"
    "EsoBE1O/G9+k0boCqjS9ZyPhpFK/8OPyPP5nomDbCSSfZYEfB9QjXWbAC4noEWRuJp3+4h"
    "JVCWHI4pIsbzG1Fm/xToezrx5MGR4bjvCvIn9I9xg3URkvjbHjAHMlhk2tIZkMLJsBWXyo"
    "Na7qjfedTplQbra4VKIOkFzXgzd5znQm+q5av65ddToLMseCGG4kMYQxlL4mpYOvxectRF"
    "tHD+dgistIbAfnetQbp0zVuEuu8fFQ4laHF1BusAR+gfYmU72SngbOib5ocbhoyttmi6sv"
    "/5yovy1evag2rmANhaLZZXz+WoiZnyzCzOMreoiZn8S323oOTDFX5vQSVnl+klmVjQ5fdp"
    "KpHL0+fX12fPJ6NrfMSuZNKf70EQBqU9drM8cRThLSJqw66ZhGtZYa+Zu5Z0ndptY+NSM7"
    "VH+A7t1UP+1HdqnXt433vnhoQF9e317EcI+t6HlpRIr6DnKJ7eUOScrowt5sCUOH1FZg4C"
    "366LbNvoUjKHvN2k6XQOEI+hmtvgJH0Eu6OW5URLiU4uLwH5XnuTeGIaFnPRtV4sE+g+Aa"
    "RDxB2BfmTIkKkJMh9YwBxqYp6Vm2x5wy6TJvwhgnnQ6wIkc7Kig3oYBxU94m3SAv8A7lM1"
    "EabajPhe6AVN8RE5dMBvAZQaH0mSgZYgwo7zP3rXap9C3OiMMM4Zhui1v4Mjo2oUUGC1WH"
    "svqOWB7pjqEuWejLkp4jhmSv02nIeH2Lj7ln2VLEj+vLPrj7ZeIK6KMtpE/mVyjsM6iLuk"
    "/o5+mJMfSvO5WaLvR+dID9c9gXK9ozyxv4+MkO+Z4heBrpmvQQuUTAt9mCYQZfrKta7leJ"
    "/RlQ9ERRU7YN7hVoYCYT0w5MuKbYfJtJ+5Vb3LfQBOYbMSkr15RDFEGGFlcJDEYG09es90"
    "/QFRfqdrGFCJQWkFbcl1bFh9qbSgaWmyuxIaDm/lApshk21GmFQygP//TlN9nnsrHUc/Y1"
    "5KUiIb0d3K9s7/4kuS1VS2FeAwdahXk32rx6axPJNkpxif72cNtIt3RmBXHDW4ZH/kdsWH"
    "lfyuSlf/bG3EBrqi0UbEYO8H3/Kq1/ICBg86fb+MwaMy5WEJ9uNdYe7S9jIl+tMMzKDaM2"
    "qm25rCUt8zCktp25/YvrLhVY2DBvnN4KHldOT2abP7yZt917uKleXyejChoeWFCWBFZrFr"
    "Bueaiy9HD5oXb1eK3jh3kilr7iOZldtvj9Y6Mh45j6osXvqo8PKKT+tvi7eqP+8EFGM/VV"
    "i19WG5e1a1nX7HIz4plRJ0WOqGZScX2xzaOX/VJWFtuMO23yBI1TVHdoMloZxL7HKAe0YZ"
    "UiHh8HNHCB5WVvUc0iWLjJBK4IFmZ/UNsZNiqChT+j1bc6a3zTxsBq0sajbGkOmLecNQX8"
    "swCkKl714Ne3letmOqz5I88Khezw8wylZ2PQ7ZmBno9E61FNDDGGbvn58rqiMnliI4+MRx"
    "hAxkkwHApVrFdHRJPh51VVjDHnS6xDhauHlm2j58z/ppXi+/vbxzty8R/i0Sco61GH2AK0"
    "MRhNuQzBVg7J0FVp+tW7OqG2jaHdnnBUxNtzO523ZDIQMhqr49azCKlqEhSo9ULV4+rOAZ"
    "EhlnqJi785AMS5S5WDb89l+AsAbUlfvNPZ/97fAvimzhtejeqthiYUcdaSJzxq57PETGVn"
    "uNpabBD6pT7jps64WRz1kFKB+3K4u/oYj8VB9zUKxJdDvAeTNss50Qc6BerLoc6+jiwnL+"
    "whpQL35XA3MMhi5x7wEbUC+8Wx/64E3MSONGk0nw8mgmhzSeHWbUSz6CAUO3Qy28LHduDQ"
    "f+VfxkeX1YfL6lWt9G2Fac3aa5HGKwOHxhxKGRJ6lkyCkVXSMbA6ZHvyaKS3Mte007HM4N"
    "fVwIjcft3Uyb4jR3yxTJkEy9wkk1xJrXN+7o2Jy+Es3iGdEi7fB2TU8s4Vs8OEhDIQUPnT"
    "7hanPcxvRhuJXq+M+bgoJdUE7DGRrALlxTZiZq/O3W3xvU5nQqG0DcSzrQqRDJIqmQjnSf"
    "FVz88jxmRhAUbGC5nijF2wGXWZ2Zb30P49eTYZ0JIuFP8CrNkWxtP+OTR0AONjRmChm6+A"
    "o/Zsqz/wXpVbXFFtgbST6D1xRBhbCWWvDkhNSjpjTEjGxsEIwBRnoiVafEbF99QUXA5Srf"
    "2kZZ9Ql4lcH6f7BLrxBVRkI8GcYEAhSbXlaCTK+PN5Y+Cni8Md9WJ2pZb5Fl0CutlA3l3W"
    "4hpI02ImngIghugkUG0lMidbGRxNI7HEfGpXJn7757+prHf/yB4scJDqj7BGmXouTwVQmf"
    "SzwTNLTrfcFlc561hPT6CjwZdmJr5WnQsg09UDxLURZFY4PGpxnZWNI2+qMsbxmyRq4IVa"
    "ALo6QpXlU/gcnpv1MXx/JrK6QzJBQgNMUvLEOl8LryMTPbfcwcx/rvWKZPDNdFL86KPtfn"
    "Qo5IUPt9uec8HWBvLqjwXbwkytO3UyRCkf4r7aOblb5GSJ2qe7+j0W6ItNzs0qzpoozprY"
    "iR/8FGdN/GTpRXHulrKbFQJYBc/IwU5Rj1m8C/ovZeRZyXqtfHF7ex0x8EU9/m093lzUYB"
    "GRlgUhy8twDYbJb96vLa5bJPJt8pemrdVNOXNtHmGMqO1QXvG6XfBFGuWOJdQtkkZZnKS0"
    "23NqzFuXx8Yx1cLOm2xn5azNnRoWUSvWzmXXzk3KzPtpDJCIYS8Ql34nHGb1+e9s+vKR6c"
    "2Y3VYSm07ONCuANvgPpLZrilkU2MjcGsEVWkAaj9fXsaD/2s49+yjDpR8YdbwubN1LKYkC"
    "cZHyvIQBFX5tDyLSz2UOZOO90HlUjPH8h1BlB2VSZ+AlIwSb9N85Vc4W8eRXzrJd+fhsfo"
    "xxAHsZeZ0D77DODgbBKm/eLIA7SGXiLp/Fkp/ThnR21vPubSpWFjyRmT1LkaKo5g76OnaJ"
    "FPmLRF4bB2qFgTfbwJ4YjZb8jsOahW9jk608ZNBXI9eBXyGVzTjsC1+71Yd9fVfG+OqoS5"
    "WBXQelFMain5TnERUayLwkPcnFSX6WRMjv3Lxl04/MA4my2Uf2QUQF+cggH/hR5UBYi+8g"
    "ukeHh4tQ6sPDbEqNz2LBV8G9VK9a9hIXUln/Evdjdi67sZh9+z8dENFu"
)
