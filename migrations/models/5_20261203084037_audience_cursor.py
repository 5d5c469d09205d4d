"""The progress of an audience built in chunks, on the mailing row.

An audience used to be one ``INSERT ... SELECT`` committed all at once, so
a mailing to a million clients sent nothing for half a minute. It is now
built in committed chunks of clients in id order: ``audience_cursor`` is the
last client id covered, ``audience_until`` the last client id when the
build began. A build interrupted by a crash resumes from the cursor. Both
are null on existing rows, which means "built": their audiences were
complete when they were made.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

_POSTGRES = """
ALTER TABLE "mailing" ADD "audience_cursor" BIGINT;
ALTER TABLE "mailing" ADD "audience_until" BIGINT;
"""

_POSTGRES_DOWN = """
ALTER TABLE "mailing" DROP COLUMN "audience_cursor";
ALTER TABLE "mailing" DROP COLUMN "audience_until";
"""

_SQLITE = """
ALTER TABLE "mailing" ADD "audience_cursor" BIGINT;
ALTER TABLE "mailing" ADD "audience_until" BIGINT;
"""

_SQLITE_DOWN = """
ALTER TABLE "mailing" DROP COLUMN "audience_cursor";
ALTER TABLE "mailing" DROP COLUMN "audience_until";
"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    return _POSTGRES if db.capabilities.dialect == "postgres" else _SQLITE


async def downgrade(db: BaseDBAsyncClient) -> str:
    return _POSTGRES_DOWN if db.capabilities.dialect == "postgres" else _SQLITE_DOWN


MODELS_STATE = (
    "eJztXW1zGjkS/isqvsROsS4bJ07OuboqbJOEXRu7bHzJbdgCMSNgyoPEzgwh3F7++3VLmv"
    "cZzBDsBTJf4kHq1svTUkvdail/VcbCZLZ7cG5bjHuVU/JXhdMxg49ETpVU6GQSpmOCR/u2"
    "JDVCmr7rOdTAkgbUdhkkmcw1HGviWYIj7Z0YM8EZoWRMLdviQ2JQThxGjdE70utNRpDZ6x"
    "HLJVNu/TkFQsMRrku8ESOm5TDDE878AOsyhQGVQQnrLVbldz0xZJDpQOFf/oBki5vsG3Px"
    "55eKmDCHAkfXADAUFMMKUH1RH0g/eegOLGabMUwtE4lletebT2TamTVscu+9pMVe9aFQez"
    "rmIf1k7kHzAwZLQT1kHBvBsAbPmSLUfGrbWiY++qo3IYnqRoTHZAM6tVFgyK0aEKZVut3W"
    "dbt712h3u5WUMH2OiCB0kiE4DgRoqisBGGITfvlHrXZ8/KZ2eHzy9vWrN29evz18C7Syve"
    "msN99VY0K0VFESs+aHZquNDRIw2tQgxITvkod6VHFJaYXoy0GQFsD5iDrZ8AcMCQlA15IS"
    "8PHeXBGM6beuzfjQG8HPo6MF6P67fnv+sX67d3S0H4e4pXNqMgvBDsFNTYllQU4xrgdsPy"
    "FEO1RIzw738RJoH+eCfZzEGpVMAYQ1+fPhWqk8C6onr5aA9eRVLq6YlQDWGrP/FlQSUZ5n"
    "hPi+fb6tKBuwLAMaXeqlcb6AHEQ0G+s4ZwJtU7Me+B/bqDagg+Y1t+d6dVgAfbt51bhr16"
    "9usLqx6/5pS/zq7Qbm1GTqPJG6d5IQU1AI+dRsfyT4k/x+3WpIeIXrDR1ZY0jX/r2CbaJT"
    "T3S5mHWpGVnI/FQftZjUpxNzRanHOUupb4rUfYwiYpetx+3v4CGyBcOEPjUeZtQxu7GciL"
    "nBXJcOmZuxQdac73+7ZTaV2KaHgbZWrlQpS4wBPWQ3ZQh89we9nxoFU9REHprprHFtnEyh"
    "HDAxdd1Yk0brAkyl+S2bCCfT9ItmVxfZfyYSdp2Q8lEr8NOIeqTPDKiQiAFBy82k8xcuUY"
    "UQhlZc2spbjq3DO7zX4+ybByrDY+MJ/lXGH5p7jJvIjJ/G1HHAciWGTa0xmY0sm4GxeNdo"
    "XTRbH3q9KqHc7HDJRB0wcl0PavKceUD6vt68bFz0ektajqVhuJGGIYyh7DUpG3xNvmgh2j"
    "rzcAGmuIwkdnCuR71phqrGXXKDT8cStyZUQLnBUviF3Jts6lW0Gjgl+qPD4aMtf7Y7XM38"
    "U6L+dnj9rN66gDUUkoLPpP5ayjI/WcYyT67oEcv8JLnd1jowQ1y56iXK8riSWZeMDp9Wyd"
    "SOXr159fb45FWgW4KURSrFVx8hoDZ1vS5zHOGkIW3DqpONaZxrpZG/mXuWzG1q43M7tkP1"
    "B+jeVf3zfmyXennd+uCTRwb0+eX1WQL3xIpe1IzIYN9BW2J7bYe0yejC3mwFQUfY1iDgLZ"
    "p02ybf0hGUv2Ztp0ugdAT9jFJfgyPoKd0cV+pEuJLh4vCzqovcG+MI0aOejTrxYJ9BcA0i"
    "niDsK3PmRB2QkzH1jBGeTVMysGyPOVXSZ96MMU56PbCKHO2ooNyEBMZN+TPtBnmCOpTPRH"
    "F0oTwXugNUQ0fMXDIbwTSCROkzUTTEGFE+ZO477VIZWpwRhxnCMd0Ot7AyOjWhRQaLFIe0"
    "+hexPNKfQlky0aclA0eMyV6v15Ln9R0+5Z5lSxL/XF/2wd2vEldAH20hfTK/QOKQQVnUfU"
    "A/z0BMoX/9ueR0ofcT6OEn6bSJVScG2Q2FIvoMa5NNrBLokDGa8gcXODpcQe1iqmUS6DKi"
    "HCnHmDqucEKPE279ffkAgyGgImZ2uJJBwCb7qlFKsHjo+GLfLBdUmRSHJMLGQTF9NqT8ne"
    "/QgpqxXpwDRGAfA0pMNsR4YjOPHZD2iLmQORNEKVgQG3VYRJwvAAMhHh4APEDiFHPmWuxk"
    "ZoHunXrQeod9tRRoVfSKGSPCBSKEDjXOmOniCHUZSFbI8TM+wIEWcvlDDAr0B7KqQrvoID"
    "c2xmTJIAZQktDgIahOVw0hv0gcWCOKLkFqykECv9XohfliYvwHiAtGDowjHA0wkaod7k+V"
    "GSh+MasqH6FDlKcCWlwnoBUYgu8PQ4QFRgCMAmghjlhNIKfTvpxemKnd2mQEoisSYRL6SP"
    "w5W4aVbKj3EIdQEUeAT7/Jzq+N9QEEs6GoTRjh28GN4/ZuFNP2gdqTFBVwyFWKd6PFq/eY"
    "sbCvDN/0r3fXrWxJ5xaQFLxleOR/xIaV96lEXvnnYMoNlKbaKMJm5ADr+1fl+QcCArZY3S"
    "Y1a0K4WEBS3WqsPTpcRUQ+WymYtQtGbVS7cllLS+ZuTG07d/uX5F3phGfD3KJ6K3hce3MS"
    "bP7wx6Lt3t1V/fIyfbyj4YEFZUVgNWcJ65afGVfuzj82Lu4v9UFukaNjn/GUBJ8dfnvfas"
    "kDZf3R4Tf1+zskUn87/H2z1bz7KI+V9VeHn9db541LWVbwuRkHy3FvUYHj5TTj8x0yHz3t"
    "TFnbIXPSKVXk9D6DdYeU0fohVl6zYj6UDOYdwvhZXCoZkpAu0BUFEfCWclhVDr4PtYCyib"
    "KUoUJJQEOncFF/RpyzjGPYZJdGGceQP6G280S7jGP4GaW+1RdaNm0MrOdGS9x/sADMa87a"
    "Av5ZAlJ1gnvnl7eV62Y2rMWDYhQK+ZExAUqPhsd0AwE9HiSjRzUxxBTjKPRVHl1QlTywiU"
    "emE4wcQCUYDQ5QfiAdI5COjFlXwRgOc45lqEiasWXb6Ev257Ri/HB7fX9Dzv5DPPoAaQPq"
    "EFsAN8Y5UBWhUTskY1fdIKrfNAm1bQx2wFAIGYzjub3eOzIbCRmfoENqgpgB1SRIUOuFKs"
    "fVnQPTHuNPZHwLXocCxLlLlct7D+Mtej0tSZ+819v/0WtKvqiLBhzE+dZjJpSRBxVPeLSg"
    "tRyw7Iyt9swm8oRxUwcDLo96hKnEfTXcXf3C0PKg+xwl4qshPgClzQoq+pCnRH011Nm3ie"
    "UUhT3CVOK+Gu4GHjvahQd8jK3Efnnsf+huQGpHmhaabw+mjpUXGoVbtxHNMwch2aGzYAuf"
    "2IFD/5V/GbPO63fn9YtG5fsab1xor0WWXRk6NBaYlBGiR41JELK6DwFWHVp78tW2dzL6ut"
    "ezzDAMHywid9g0dYT9xBFfLVOGhTM3bUmupdQFL1EEQfw6rn1M54TL+sAYtbxTZdlhiE4V"
    "DFD56kSH0wFevUAZicGgSlREvWITsMdEYxVMXmwjxrrraPYO3+v1ZhRSu2B4dlUiGoOkTm"
    "bCeVD2qudH1mP4vAAh44c8UsMu2Iy6zAxuKOzJZxPBLOlD8guwmm1hPOyfQkNHMD4CAxa6"
    "+RJs1IFtDUfey2qHK1NboNlJ9J44RoythLSXB6QhKZ2pvLABjYMRgEH/RFN0eGCK7ykVXA"
    "1vgfhh/L5BXSVyfZzvE+jGV2CRjQRx4t0EaVRbjkbCv8Ogb7LAL+ol5Eot8x26BHSzwXh3"
    "WYdrIE2LmfhAiRijk0C1lchbCkrgKBqJJd4wcOVVCP9pSnUZxH9NDBMcNPUnWKK8FSPvd6"
    "gbIcHgCS6yWG6Hq+s0WM5AoKPBp2YmVjsLbr9EENdCkPckIKvD9T0FHHlzdYcC5yRRAy/S"
    "AuDVJ1R5PoUvUd2sXwj9I3XPIUIThviAkpKPaUa5yosPG+d++Lvf0/y7Dzme+EXN7XmM8N"
    "lAXv9bhFsYlXijnqOpFEPcZzslN8s8Z9P4fNO8xQT9sclxiOUDN+UDNztxua184OYnCxxK"
    "WmUZu1khwF7gOfcNMtgTEu8D/1MJOUh5XimfXV9fxgR81kzOrfurswYsIlKyQGR5OU6/qF"
    "lbdLYlecsQvU2eaVpa/YyHHhcZjDG2Mq54Zed6GSC5Y6FyywRIls+37bZOVe65wsFAMbZS"
    "p66qUzcpFuunEUDq1HKJk8j3wmHWkP/G5k9/FrkZ2m0tp5FpTbMGaMP/zWy7VMyywMZ0aw"
    "xXaAFp3V9eJo55n+0Rvk/ygOwjo47Xhy1dJeNoOElSXXRErA7cuqMY9WNnxfl4L/UmF2O8"
    "+ENc+c76TA28oud4k/5vsdrbZTy8tbf5Ll7MW3z2NIK9jPwugHeUZwcPR2qvXy+BO1Dl4i"
    "7zEuGuWUM6P8519zYVa3Oqy1iOlWzgOOcO2sC7ZBT5i0RRGYdspYA3W8CemExWnMdRztK3"
    "sclSHjPoq1Ho0bMIy2Y8eIbVbvWDZz8UI7w+06XOQK6jSobFonOqiwwVGtI8pXlSyCb5WQ"
    "LkfnDzlm9+5D7KlG995D/GVBofOcYHTqoCCGvyHUT36PBwGZP68DDfpMa8xKGc4F6mVy1/"
    "iYuwPP8S9/fsXHZjMfv+f3BbrpY="
)
