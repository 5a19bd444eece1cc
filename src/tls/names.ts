/**
 * Host names as SNI routing and certificate choice compare them: case-insensitive,
 * without a trailing dot, and `*.example.com` matching exactly one label
 * (`a.example.com`, not `a.b.example.com` nor `example.com`), as certificates do
 * (RFC 6125 §6.4.3, without partial-label wildcards). An exact name wins over a
 * wildcard, whatever their order. Pure.
 */

/** A DNS host name (letters, digits, hyphens, underscores), lower-cased, labels of 1 to 63. */
const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** normalizeHostName lower-cases a name and drops one trailing dot (`A.Example.COM.` → `a.example.com`). */
export function normalizeHostName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/**
 * checkNamePattern checks a name to match: a host name (`a.example.com`) or a
 * wildcard over one label (`*.example.com`). Returns why it is neither, or null.
 */
export function checkNamePattern(pattern: string): string | null {
  const name = normalizeHostName(pattern);
  const rest = name.startsWith('*.') ? name.slice(2) : name;
  if (rest.includes('*')) {
    return `${JSON.stringify(pattern)}: a wildcard must be a whole first label followed by a name, like *.example.com`;
  }
  if (/[^\x21-\x7e]/.test(rest)) {
    return `${JSON.stringify(pattern)}: expected an ASCII host name (write internationalized names as xn--...)`;
  }
  if (!HOST_NAME.test(rest)) return `${JSON.stringify(pattern)}: not a host name`;
  return null;
}

/**
 * NameTable maps host names and one-label wildcards to values. `lookup` tries the
 * exact name, then the wildcard for its parent (`a.b.example.com` → `*.b.example.com`
 * only). Patterns are checked by the caller (checkNamePattern).
 */
export class NameTable<V> {
  readonly #exact = new Map<string, V>();
  /** #wildcards maps the name under the `*.` (`example.com` for `*.example.com`). */
  readonly #wildcards = new Map<string, V>();

  /** add maps `pattern` to `value`; false (and no change) if the pattern is there already. */
  add(pattern: string, value: V): boolean {
    const name = normalizeHostName(pattern);
    const [map, key] = name.startsWith('*.')
      ? [this.#wildcards, name.slice(2)]
      : [this.#exact, name];
    if (map.has(key)) return false;
    map.set(key, value);
    return true;
  }

  /** lookup returns the value for `name` (any case, trailing dot or not), or undefined. */
  lookup(name: string): V | undefined {
    const host = normalizeHostName(name);
    const exact = this.#exact.get(host);
    if (exact !== undefined) return exact;
    const dot = host.indexOf('.');
    // An empty first label (`.example.com`) is no label: no wildcard matches it.
    return dot > 0 ? this.#wildcards.get(host.slice(dot + 1)) : undefined;
  }
}
