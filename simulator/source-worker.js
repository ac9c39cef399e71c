// The simulator's worker thread when it runs from the TypeScript sources (this repository's tests
// and scripts): a worker thread does not inherit a loader registered at run time, so register tsx
// here, then load the worker. Not published: the package runs dist/worker.js directly.
import { register } from 'tsx/esm/api';

register();
await import('./src/worker.ts');
