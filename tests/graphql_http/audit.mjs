// The graphql-http server audits against one URL; prints every result as JSON.
// With AUDIT_AUTHORIZATION set, each request carries it as its Authorization header.
import { serverAudits } from "graphql-http";

const url = process.argv[2];
const authorization = process.env.AUDIT_AUTHORIZATION;
const fetchFn = authorization
  ? (input, init = {}) => fetch(input, { ...init, headers: { ...init.headers, authorization } })
  : fetch;

const results = [];
for (const audit of serverAudits({ url, fetchFn })) {
  const result = await audit.fn();
  results.push({ id: result.id, name: result.name, status: result.status, reason: result.reason ?? null });
}
console.log(JSON.stringify(results, null, 2));
