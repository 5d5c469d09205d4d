// graphql-inspector's diff of two SDL files (the released schema, then the
// current one): prints every change with its criticality, as JSON.
import { readFileSync } from "node:fs";
import { diff } from "@graphql-inspector/core";
import { buildSchema } from "graphql";

const [released, current] = process.argv.slice(2).map((path) => buildSchema(readFileSync(path, "utf8")));
const changes = await diff(released, current);
console.log(JSON.stringify(changes.map((change) => ({
  level: change.criticality.level,
  type: change.type,
  message: change.message,
}))));
