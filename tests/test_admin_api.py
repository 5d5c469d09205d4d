"""What the admin page needs from the server: its files, its public config, the API additions."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from graphql_api.admin import public_config
from graphql_api.admin.routes import STATIC_DIR, content_security_policy
from graphql_api.ids import Kind, global_id
from models.time_zones import canonical_zones
from settings import Settings
from tests.conftest import GraphQLClient
from tests.support.factories import make_client

PAGE = """query($filter: ClientFilterInput, $timezone: String, $first: Int) {
    clients(filter: $filter, timezone: $timezone, first: $first) {
        totalCount
        edges { node { id timezone } }
    }
}"""


async def test_clients_filter_by_time_zone(gql: GraphQLClient) -> None:
    moscow = await make_client(phone="79030000001", tag="vip", timezone="Europe/Moscow")
    await make_client(phone="79030000002", tag="vip", timezone="Asia/Tokyo")
    await make_client(phone="79160000003", tag="", timezone="Europe/Moscow")

    async def page(**variables: Any) -> dict[str, Any]:
        result: dict[str, Any] = (await gql.execute(PAGE, variables))["clients"]
        return result

    in_moscow = await page(timezone="Europe/Moscow")
    assert in_moscow["totalCount"] == 2
    assert {edge["node"]["timezone"] for edge in in_moscow["edges"]} == {"Europe/Moscow"}
    vip_in_moscow = await page(timezone="Europe/Moscow", filter={"tags": ["vip"]})
    assert [edge["node"]["id"] for edge in vip_in_moscow["edges"]] == [
        global_id(Kind.CLIENT, moscow.id)
    ]
    assert (await page(timezone=None))["totalCount"] == 3
    for unknown in ("Mars/Olympus", "x" * 500, "localtime"):
        refused = (await gql.post(PAGE, {"timezone": unknown})).json()
        assert refused["errors"][0]["message"].startswith("`timezone` must be an IANA"), unknown


async def test_a_filters_audience_is_counted_without_rows(gql: GraphQLClient) -> None:
    """The mailing form's live count: ``first: 0`` answers the count and no rows."""
    for n in range(4):
        await make_client(phone=f"7903000000{n}", tag="vip" if n % 2 else "")
    audience = await gql.execute(PAGE, {"filter": {"tags": ["vip"]}, "first": 0})
    assert audience["clients"] == {"totalCount": 2, "edges": []}


async def test_page_is_served_at_root_with_its_security_headers(gql: GraphQLClient) -> None:
    page = await gql.http.get("/")
    script = await gql.http.get("/admin/js/main.js")
    style = await gql.http.get("/admin/style.css")
    missing = await gql.http.get("/admin/js/nothing.js")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/admin/js/main.js">' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["content-security-policy"] == policy
    assert style.headers["content-type"].startswith("text/css")
    assert missing.status_code == 404


async def test_graphiql_stays_at_graphql(gql: GraphQLClient) -> None:
    response = await gql.http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_open_config(gql: GraphQLClient) -> None:
    response = await gql.http.get("/admin/config.json")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "graphqlPath": "/graphql",
        "authRequired": False,
        "apiToken": False,
        "oidc": None,
    }


def test_config_names_the_sign_in_but_holds_no_secret() -> None:
    settings = Settings(
        api_token=SecretStr("token-that-must-not-leak"),
        provider_token=SecretStr("provider-secret"),
        oidc_issuer="https://id.example.test/realms/ops",
        oidc_audience="mailings-api",
        oidc_client_id="mailings-admin",
        oidc_roles_claim="realm_access.roles",
    )
    config = public_config(settings)
    assert config["authRequired"] is True
    assert config["apiToken"] is True
    assert config["oidc"]["issuer"] == "https://id.example.test/realms/ops"
    assert config["oidc"]["clientId"] == "mailings-admin"
    assert config["oidc"]["rolesClaim"] == "realm_access.roles"
    assert config["oidc"]["operatorRole"] == "operator"
    text = repr(config)
    assert "token-that-must-not-leak" not in text
    assert "provider-secret" not in text


def test_policy_lets_the_page_reach_the_provider_only_with_oidc() -> None:
    closed = content_security_policy(Settings())
    assert "connect-src 'self';" in closed
    with_oidc = content_security_policy(
        Settings(oidc_issuer="http://127.0.0.1:9999/realm", oidc_audience="api")
    )
    assert "connect-src 'self' http://127.0.0.1:9999 https:;" in with_oidc


def test_the_page_loads_nothing_from_elsewhere() -> None:
    """No CDN: every file refers only to our own paths."""
    for path in STATIC_DIR.rglob("*"):
        if path.suffix in {".html", ".js", ".css"}:
            text = path.read_text(encoding="utf-8")
            for scheme in ("http://", "https://", "//cdn", "@import"):
                assert scheme not in text.replace("http://www.w3.org/2000/svg", ""), (
                    path,
                    scheme,
                )


async def test_time_zones_are_the_names_a_client_may_have(gql: GraphQLClient) -> None:
    """What the page suggests in its zone fields, instead of the browser's older names."""
    names = (await gql.execute("{ timeZones }"))["timeZones"]
    assert names == sorted(canonical_zones())
    assert {"UTC", "Europe/Moscow", "Asia/Kolkata", "Europe/Kyiv"} <= set(names)
    assert not {"Asia/Calcutta", "Europe/Kiev", "localtime", "Factory"} & set(names)
