// Worker threads do not inherit a loader registered at run time: register tsx, then run the worker.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
