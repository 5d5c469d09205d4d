// Apollo Client 4 with its plain HttpLink (no WebSocket link): a subscription
// goes over HTTP as Apollo's multipart protocol. Prints each event as a JSON
// line, then {"complete": true} when the server ends the stream.
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";

const [url, id, query] = process.argv.slice(2);
const client = new ApolloClient({ link: new HttpLink({ uri: url }), cache: new InMemoryCache() });
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

client.subscribe({ query: gql(query), variables: { id }, fetchPolicy: "no-cache" }).subscribe({
  next: (result) => print({ data: result.data ?? null, error: result.error ? String(result.error) : null }),
  error: (error) => {
    print({ failed: String(error) });
    process.exitCode = 1;
  },
  complete: () => print({ complete: true }),
});
