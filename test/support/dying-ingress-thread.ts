/**
 * An ingress thread that dies (test/ingress/threads.test.ts): it answers
 * `listen` as the real one does (src/ingress/worker.ts), then exits with
 * code 3 as if it had crashed.
 */
import { parentPort } from 'node:worker_threads';

parentPort!.on('message', (message: { type: string }) => {
  if (message.type !== 'listen') return;
  parentPort!.postMessage({ type: 'listening', port: 4242 });
  setTimeout(() => process.exit(3), 20);
});
