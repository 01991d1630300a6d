/**
 * node-llama-cpp turns a JSON schema into a grammar and silently accepts what it does not know
 * (e.g. `{"type":"frobnicate"}` becomes "any value"). This check refuses schemas it would misread, so
 * an automation learns about a typo from an error instead of from unconstrained output.
 */
const TYPES = new Set(["string", "number", "integer", "boolean", "null", "object", "array"]);
const SCHEMA_MAP_KEYS = ["properties", "$defs", "definitions"] as const;
const SCHEMA_LIST_KEYS = ["anyOf", "oneOf", "allOf", "prefixItems"] as const;
const MAX_NODES = 500;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Problems found in the schema, at most a few, each with its JSON path. Empty when it is usable. */
export function jsonSchemaProblems(schema: unknown): string[] {
  const problems: string[] = [];
  let nodes = 0;
  const visit = (node: unknown, path: string): void => {
    if (problems.length >= 5) return;
    if (++nodes > MAX_NODES) {
      if (nodes === MAX_NODES + 1) problems.push(`more than ${MAX_NODES} schema nodes`);
      return;
    }
    if (typeof node === "boolean") return;
    if (!isObject(node)) {
      problems.push(`${path}: a schema must be an object`);
      return;
    }
    const type = node.type;
    if (type !== undefined) {
      const types = Array.isArray(type) ? type : [type];
      for (const t of types)
        if (typeof t !== "string" || !TYPES.has(t))
          problems.push(`${path}.type: unknown type ${JSON.stringify(t)}`);
    }
    if (node.enum !== undefined && (!Array.isArray(node.enum) || node.enum.length === 0)) {
      problems.push(`${path}.enum: must be a non-empty array`);
    }
    if (
      node.required !== undefined &&
      (!Array.isArray(node.required) || !node.required.every((r) => typeof r === "string"))
    ) {
      problems.push(`${path}.required: must be an array of property names`);
    }
    for (const key of SCHEMA_MAP_KEYS) {
      const map = node[key];
      if (map === undefined) continue;
      if (!isObject(map)) problems.push(`${path}.${key}: must be an object of schemas`);
      else for (const [name, child] of Object.entries(map)) visit(child, `${path}.${key}.${name}`);
    }
    for (const key of SCHEMA_LIST_KEYS) {
      const list = node[key];
      if (list === undefined) continue;
      if (!Array.isArray(list) || list.length === 0)
        problems.push(`${path}.${key}: must be a non-empty array of schemas`);
      else
        list.forEach((child, i) => {
          visit(child, `${path}.${key}[${i}]`);
        });
    }
    if (node.items !== undefined) visit(node.items, `${path}.items`);
    if (node.additionalProperties !== undefined && typeof node.additionalProperties !== "boolean") {
      visit(node.additionalProperties, `${path}.additionalProperties`);
    }
  };
  visit(schema, "json_schema");
  return problems;
}
