"""The schema documents itself, and /docs and docs/api.md are generated from it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    get_named_type,
    is_introspection_type,
    is_specified_scalar_type,
)

from graphql_api.reference import api_markdown
from graphql_api.schema import schema
from tests.support.inprocess import http_client, without_lifespan

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "reference-token-5c1a"


def served() -> GraphQLSchema:
    """The schema as introspection answers it."""
    return schema._schema


def elements(graphql_schema: GraphQLSchema) -> Iterator[tuple[str, str | None]]:
    """Every type, field, argument, input field and enum value, with its description."""
    for name, type_ in sorted(graphql_schema.type_map.items()):
        if is_introspection_type(type_) or is_specified_scalar_type(type_):  # type: ignore[arg-type]
            continue
        yield name, type_.description
        if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in type_.fields.items():
                yield f"{name}.{field_name}", field.description
                for arg_name, arg in field.args.items():
                    yield f"{name}.{field_name}({arg_name})", arg.description
        elif isinstance(type_, GraphQLInputObjectType):
            for field_name, input_field in type_.fields.items():
                yield f"{name}.{field_name}", input_field.description
        elif isinstance(type_, GraphQLEnumType):
            for value_name, value in type_.values.items():
                yield f"{name}.{value_name}", value.description


def test_every_schema_element_is_described() -> None:
    found = list(elements(served()))
    assert len(found) > 150  # the walk sees the whole schema
    missing = [path for path, description in found if not (description or "").strip()]
    assert missing == [], f"{len(missing)} elements without a description: {missing}"


def test_every_nullable_field_says_what_null_means() -> None:
    unexplained = []
    for name, type_ in served().type_map.items():
        if is_introspection_type(type_) or not isinstance(
            type_, GraphQLObjectType | GraphQLInterfaceType
        ):
            continue
        for field_name, field in type_.fields.items():
            if not isinstance(field.type, GraphQLNonNull) and "null" not in (
                field.description or ""
            ):
                unexplained.append(f"{name}.{field_name}")
    assert unexplained == []


def test_every_mutation_names_the_errors_it_can_answer() -> None:
    mutation = served().mutation_type
    assert mutation is not None
    unnamed = []
    for name, field in mutation.fields.items():
        result = get_named_type(field.type)
        assert isinstance(result, GraphQLUnionType), name
        for member in result.types:
            if "Error" in [i.name for i in member.interfaces] and member.name not in (
                field.description or ""
            ):
                unnamed.append(f"{name}: {member.name}")
    assert unnamed == []


def test_error_types_share_the_error_interface() -> None:
    error = served().get_type("Error")
    assert isinstance(error, GraphQLInterfaceType)
    assert list(error.fields) == ["message"]
    implementations = {t.name for t in served().get_implementations(error).objects}
    assert implementations == {"ValidationError", "NotFoundError", "ConflictError"}
    # Every member of a result union that is not the result itself is an Error.
    for type_ in served().type_map.values():
        if isinstance(type_, GraphQLUnionType):
            errors = [t.name for t in type_.types if t.name.endswith("Error")]
            assert set(errors) <= implementations, type_.name


def test_docs_api_md_is_current() -> None:
    assert api_markdown(schema) == (ROOT / "docs" / "api.md").read_text(), "run `make schema`"


def test_docs_api_md_covers_every_operation_and_type() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    for root in (served().query_type, served().mutation_type, served().subscription_type):
        assert root is not None
        for name in root.fields:
            assert f"### {root.name.lower()} `{name}`" in text, name
    for name, _ in elements(served()):
        if "." not in name and name not in ("Query", "Mutation", "Subscription"):
            assert f"\n### {name}\n" in text, name
    # Every link inside the page lands on a heading of the page.
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
    }
    for target in re.findall(r"\]\(#([^)]+)\)", text):
        assert target in anchors, target


@pytest.fixture
async def api_with_token() -> AsyncIterator[httpx.AsyncClient]:
    """The app, in process, with API_TOKEN set (its lifespan is not run: no database needed)."""
    async with without_lifespan(api_token=TOKEN) as app, http_client(app) as http:
        yield http


async def test_docs_page_is_public_offline_and_complete(api_with_token: httpx.AsyncClient) -> None:
    page = await api_with_token.get("/docs")
    style = await api_with_token.get("/docs/reference.css")
    refused = await api_with_token.post("/graphql", json={"query": "{ __typename }"})
    assert refused.status_code == 401  # the API itself still wants the token
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src" not in policy
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")
    html = page.text
    # Nothing from elsewhere, no script, no inline style.
    assert re.findall(r'(?:src|href)="([^"#]*)"', html) == ["/docs/reference.css", "/graphql", "/"]
    assert "<script" not in html
    assert "style=" not in html
    assert "<style" not in html
    for name, _ in elements(served()):
        if "." not in name and name not in ("Query", "Mutation", "Subscription"):
            assert f'id="{name}"' in html, name
    assert 'id="mutation-createMailing"' in html
    assert "<code>... on Error { message }</code>" in html


async def test_docs_page_links_to_graphiql_only_when_served() -> None:
    async with without_lifespan(graphiql=False) as app, http_client(app) as http:
        page = await http.get("/docs")
    assert page.status_code == 200
    assert 'href="/graphql"' not in page.text


def test_admin_page_and_readme_link_to_the_reference() -> None:
    admin = (ROOT / "graphql_api" / "admin" / "static" / "index.html").read_text()
    assert 'href="/docs"' in admin
    readme = (ROOT / "README.md").read_text()
    assert "/docs" in readme
    assert "(docs/api.md)" in readme
