// criu-ts restore: the images of a dump become running processes again (see restore.ts).
export { RestoreError } from './errors.js';
export { checkPidfile, writePidfile } from './pidfile.js';
export { planRestore, type RestorePlan, type TaskPlan } from './plan.js';
export { type RestoreOptions, type RestoreResult, restore } from './restore.js';
export { stubElf } from './stub.js';
export { waitForRoot } from './wait.js';
