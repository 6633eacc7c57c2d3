// The helpers of core's tests (which call core's API, never the CLI): those shared with the other
// packages' tests, in tools/testkit.
export * from '@criu-ts/testkit';
