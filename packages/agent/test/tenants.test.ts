/** The tenants file (tenants.ts): what it accepts, what it refuses and why, and token matching. */
import assert from 'node:assert/strict';
import { suite, test } from 'node:test';
import { VaccelError } from '@vaccel/core';
import { parseTenants, TokenTable } from '../src/tenants.js';

const refused = (text: string, why: RegExp) =>
  assert.throws(
    () => parseTenants(text, 'tenants'),
    (e: unknown) => e instanceof VaccelError && e.code === 'EINVAL' && why.test(e.message),
    text,
  );

suite('tenants file', () => {
  test('reads tokens, groups and weights; skips comments and blank lines', () => {
    const tenants = parseTenants('# comment\n\n  t1  gold 2\nt2 gold 2\nt3 bronze\n', 'tenants');
    assert.deepEqual(
      [...tenants],
      [
        ['t1', { group: 'gold', weight: 2 }],
        ['t2', { group: 'gold', weight: 2 }],
        ['t3', { group: 'bronze', weight: 1 }],
      ],
    );
  });

  test('refuses malformed lines, naming the line', () => {
    refused('lonely\n', /tenants:1: expected/);
    refused('t1 g 1 extra\n', /tenants:1: expected/);
    refused('t1 g{x}\n', /tenants:1: a group/);
    refused('t1 g 0\n', /a weight/);
    refused('t1 g 1e9\n', /a weight/);
    refused('t1 g NaN\n', /a weight/);
    refused('t1 g 1e-320\n', /a weight is a number from 0\.001/);
    refused('t1 guest\n', /"guest" names connections without a group/);
    refused('t1 g\n\nt1 h\n', /tenants:3: this token is listed twice/);
    refused('t1 g 1\nt2 g 2\n', /tenants:2: group g has weight 1/);
    refused('# only a comment\n', /no tenants/);
  });

  test('a header matches its token only, whole', () => {
    const table = new TokenTable(parseTenants('secret-a a\nsecret-b b 3\n', 'tenants'));
    assert.deepEqual(table.match('Bearer secret-b'), { group: 'b', weight: 3 });
    assert.equal(table.match('Bearer secret-a')?.group, 'a');
    for (const wrong of [undefined, '', 'secret-a', 'Bearer secret', 'Bearer secret-a ', 'bearer secret-a'])
      assert.equal(table.match(wrong), undefined, String(wrong));
  });
});
