// toYAML writes a resource (decoded JSON) as a YAML document that the
// gateway's apply reads back unchanged. Strings are quoted JSON-style
// unless they are plainly safe, which keeps the emitter small and never
// ambiguous (yes, no, 1.0, "a: b" and friends are all quoted).

const plain = /^[A-Za-z_/][A-Za-z0-9_./@+-]*$/;
const reserved = /^(true|false|yes|no|on|off|null|y|n|~)$/i;

function scalar(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  const s = String(v);
  return plain.test(s) && !reserved.test(s) ? s : JSON.stringify(s);
}

function isScalar(v) {
  return v === null || typeof v !== "object";
}

function lines(v, indent) {
  const pad = "  ".repeat(indent);
  const out = [];
  for (const [k, val] of Object.entries(v)) {
    const key = scalar(k);
    if (isScalar(val)) {
      out.push(`${pad}${key}: ${scalar(val)}`);
    } else if (Array.isArray(val)) {
      if (val.every(isScalar)) out.push(`${pad}${key}: [${val.map(scalar).join(", ")}]`);
      else {
        out.push(`${pad}${key}:`);
        for (const item of val) {
          const sub = isScalar(item) ? [`${pad}  ${scalar(item)}`] : lines(item, indent + 2);
          // The first line of an item carries the dash.
          sub[0] = `${pad}- ${sub[0].trimStart()}`;
          out.push(...sub);
        }
      }
    } else if (Object.keys(val).length === 0) {
      out.push(`${pad}${key}: {}`);
    } else {
      out.push(`${pad}${key}:`, ...lines(val, indent + 1));
    }
  }
  return out;
}

/** toYAML returns obj as one YAML document (no leading ---). */
export function toYAML(obj) {
  return lines(obj, 0).join("\n") + "\n";
}
