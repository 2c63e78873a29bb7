import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SidecarErrors } from '../src/errors.ts';

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');

describe('docs/errors.md', () => {
  it('lists every error code with its HTTP status', () => {
    for (const [code, ErrorClass] of Object.entries(SidecarErrors)) {
      const status = new ErrorClass('x').statusCode;
      expect(doc).toMatch(new RegExp(`\\| \`${code}\` \\| ${status} \\|`));
    }
  });

  it('lists no code the service does not have', () => {
    const documented = [...doc.matchAll(/\| `(SIDECAR_ERR_\w+)` \|/g)].map((match) => match[1]);
    expect(documented.sort()).toEqual(Object.keys(SidecarErrors).sort());
  });
});
