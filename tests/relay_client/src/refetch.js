// relay-runtime with the artifacts relay-compiler made from MailingCard.js: the
// query by the id given, then, once a line arrives on stdin, the fragment's
// refetch query, which reads the mailing again through node(id:).
const readline = require("node:readline");
const {
  Environment,
  Network,
  RecordSource,
  Store,
  createOperationDescriptor,
  fetchQuery,
  getSelector,
} = require("relay-runtime");
const MailingCardQuery = require("./__generated__/MailingCardQuery.graphql");
const MailingCardRefetchQuery = require("./__generated__/MailingCardRefetchQuery.graphql");
const MailingCardFragment = require("./__generated__/MailingCard_mailing.graphql");

const [url, id] = process.argv.slice(2);
const sent = [];
const network = Network.create(async (params, variables) => {
  sent.push({ name: params.name, text: params.text });
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ query: params.text, variables }),
  });
  return response.json();
});
const environment = new Environment({ network, store: new Store(new RecordSource()) });

async function read(query, variables, field) {
  await fetchQuery(environment, query, variables).toPromise();
  const root = environment.lookup(createOperationDescriptor(query, variables).fragment).data;
  const ref = root[field];
  return ref ? environment.lookup(getSelector(MailingCardFragment, ref)).data : null;
}

(async () => {
  const first = await read(MailingCardQuery, { id }, "mailing");
  process.stdout.write(JSON.stringify({ first }) + "\n");
  await new Promise((resolve) => readline.createInterface({ input: process.stdin }).once("line", resolve));
  const refetched = await read(MailingCardRefetchQuery, { id: first.id }, "node");
  process.stdout.write(JSON.stringify({ refetched, sent }) + "\n");
  process.exit(0);
})().catch((error) => {
  process.stdout.write(JSON.stringify({ failed: String(error) }) + "\n");
  process.exit(1);
});
