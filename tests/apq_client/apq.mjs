// Apollo Client with its persisted-queries link (hashed queries over GET), against
// the URL given; prints every request the link made and every answer, as JSON.
import { createHash } from "node:crypto";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries/index.js";

const url = process.argv[2];
const requests = [];
async function recordingFetch(input, init) {
  const target = new URL(typeof input === "string" ? input : input.url);
  const body = init?.body ? JSON.parse(init.body) : null;
  const response = await fetch(input, init);
  requests.push({
    method: init?.method ?? "GET",
    sentQuery: Boolean(body?.query ?? target.searchParams.get("query")),
    status: response.status,
    cacheControl: response.headers.get("cache-control"),
  });
  return response;
}

const sha256 = (text) => createHash("sha256").update(text).digest("hex");
const link = createPersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(
  new HttpLink({ uri: url, fetch: recordingFetch }),
);
const client = new ApolloClient({ link, cache: new InMemoryCache(), defaultOptions: { query: { fetchPolicy: "no-cache" } } });
const QUERY = gql`query Count($first: Int) { clients(first: $first) { totalCount } }`;

const answers = [];
for (const first of [1, 2]) {
  const { data } = await client.query({ query: QUERY, variables: { first } });
  answers.push(data);
}
console.log(JSON.stringify({ requests, answers }));
