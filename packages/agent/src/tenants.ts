/**
 * Token tenants (`--tenants-file`): each bearer token names the group its calls are scheduled in
 * and the group's weight, so the connections of one function (or team) share one fair share and
 * one queue bound, and a paying tier can be given more (Triton's priority levels are the model;
 * upstream vAccel has nothing of the kind).
 *
 * The file has one tenant per line, `<token> <group> [weight]`; blank lines and lines starting
 * with `#` are skipped. Groups are metric labels, so they are short names; a group's weight is
 * the same on every line that names it.
 * @module
 */
import { timingSafeEqual } from 'node:crypto';
import { VaccelError } from '@vaccel/core';

/** The group a token's calls are scheduled in, and its weight. */
export interface TokenTenant {
  readonly group: string;
  /** Share relative to other groups' (default 1). */
  readonly weight: number;
}

const GROUP = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_WEIGHT = 1000;
const MIN_WEIGHT = 1 / MAX_WEIGHT;
/** The metric label of tenants that are plain connections: no group may take it. */
const RESERVED_GROUP = 'guest';

/**
 * Parses a tenants file.
 * @throws VaccelError `EINVAL` naming `source` and the line for a malformed line, a duplicate
 *   token, a group given two weights, or a file without tenants.
 */
export function parseTenants(text: string, source: string): Map<string, TokenTenant> {
  const tenants = new Map<string, TokenTenant>();
  const weights = new Map<string, number>();
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const where = `${source}:${index + 1}`;
    const fields = line.split(/\s+/);
    const [token, group, weightText] = fields;
    if (fields.length < 2 || fields.length > 3)
      throw new VaccelError('EINVAL', `${where}: expected "<token> <group> [weight]"`);
    if (!GROUP.test(group!))
      throw new VaccelError('EINVAL', `${where}: a group is 1–64 letters, digits, '_', '.' or '-'`);
    const weight = weightText === undefined ? 1 : Number(weightText);
    if (!Number.isFinite(weight) || weight < MIN_WEIGHT || weight > MAX_WEIGHT)
      throw new VaccelError('EINVAL', `${where}: a weight is a number from ${MIN_WEIGHT} to ${MAX_WEIGHT}`);
    if (group === RESERVED_GROUP)
      throw new VaccelError(
        'EINVAL',
        `${where}: "${RESERVED_GROUP}" names connections without a group; choose another name`,
      );
    if (tenants.has(token!)) throw new VaccelError('EINVAL', `${where}: this token is listed twice`);
    const known = weights.get(group!);
    if (known !== undefined && known !== weight)
      throw new VaccelError('EINVAL', `${where}: group ${group} has weight ${known} on an earlier line`);
    weights.set(group!, weight);
    tenants.set(token!, { group: group!, weight });
  }
  if (tenants.size === 0)
    throw new VaccelError('EINVAL', `${source}: no tenants (lines "<token> <group> [weight]")`);
  return tenants;
}

/** Finds the tenant of an `authorization` header, comparing it with every token in constant time. */
export class TokenTable {
  readonly #entries: { expected: Buffer; tenant: TokenTenant }[];

  constructor(tenants: ReadonlyMap<string, TokenTenant>) {
    this.#entries = [...tenants].map(([token, tenant]) => ({
      expected: Buffer.from(`Bearer ${token}`),
      tenant,
    }));
  }

  /** The tenant whose token the header carries, or undefined. */
  match(header: string | undefined): TokenTenant | undefined {
    const given = Buffer.from(header ?? '');
    let found: TokenTenant | undefined;
    // Every entry is compared, so the time taken does not say which token came close.
    for (const { expected, tenant } of this.#entries) {
      const same = given.byteLength === expected.byteLength && timingSafeEqual(given, expected);
      if (same) found = tenant;
    }
    return found;
  }
}
