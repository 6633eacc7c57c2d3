import { packageTestConfig } from '../../vitest.shared.ts';

// The test files trace real processes and keep both cores busy (the threads workload spins): run them one
// after the other so that timing-sensitive checks (the sleeper's SLEPT, seize deadlines) see a sane load.
export default packageTestConfig('compel', { fileParallelism: false });
