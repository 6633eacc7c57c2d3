// The bench itself is not a test (it needs root and takes minutes); this runs the checks of its pure
// part (arguments, row selection, statistics) with the other packages' tests.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    reporters: ['default', ['json', { outputFile: '../../../.reports/bench-vs-criu.json' }]],
  },
});
