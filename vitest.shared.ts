// Shared vitest settings for every package: one JSON report per package for the CI summary.
import { defineConfig } from 'vitest/config';

export function packageTestConfig(
  name: string,
  extra: { testTimeout?: number; fileParallelism?: boolean } = {},
) {
  return defineConfig({
    test: {
      include: ['test/**/*.test.ts'],
      testTimeout: extra.testTimeout ?? 60_000,
      hookTimeout: 60_000,
      fileParallelism: extra.fileParallelism ?? true,
      reporters: ['default', ['json', { outputFile: `../../.reports/${name}.json` }]],
    },
  });
}
