// The graphql-sse client in distinct-connections mode (one HTTP request per
// subscription). Prints each event as a JSON line, then {"complete": true}.
import { createClient } from "graphql-sse";

const [url, id, query] = process.argv.slice(2);
const client = createClient({ url, singleConnection: false, retryAttempts: 0 });
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

try {
  for await (const result of client.iterate({ query, variables: { id } })) {
    print({ data: result.data ?? null, errors: result.errors ?? null });
  }
  print({ complete: true });
} catch (error) {
  print({ failed: String(error?.message ?? JSON.stringify(error)) });
  process.exitCode = 1;
} finally {
  client.dispose();
}
