/**
 * The sidecar environment for a test that sends hundreds of requests at once
 * and is not about overload: admission control off.
 *
 * On a busy 2-core machine, above all with ingress threads, such a burst makes
 * the event loops late for two samples running, and admission control refuses
 * some of it with 503 (seen in CI: the fault suite, 400 at once; the batching
 * test, 20 of 2,000 in 1 start of 8). That is its job, and it has suites of its
 * own (test/integration/admission.test.ts, test/http/admission.test.ts). The
 * suites that use this check something else, each answer by answer.
 */
export const ADMISSION_OFF = { ADMISSION_MAX_LOOP_DELAY_MS: '0' } as const;
