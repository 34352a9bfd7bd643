// Entry of an evaluation worker, thread or child process (eval/pool.ts): tsx's loader registered in
// the parent does not reach a worker thread or a forked process, so each registers its own before
// loading the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
