/** An in-memory Downstream for actor unit tests: each call waits until the test answers it. */
import type { Downstream, DownstreamAnswer, DownstreamRequest } from '../../src/downstream/client.ts';
import type { SidecarError } from '../../src/errors.ts';

/** An answer as a test gives it; the fake adds the call's duration. */
export type FakeAnswer =
  | { ok: true; status: number; results: unknown[] }
  | { ok: false; status: number; error: SidecarError };

export interface PendingCall {
  readonly request: DownstreamRequest;
  readonly items: unknown[];
  answer(answer: FakeAnswer): void;
  /** Answers with one result per item: `{ echo: item }`. */
  echo(): void;
}

export class FakeDownstream implements Downstream {
  readonly calls: PendingCall[] = [];
  inflight = 0;
  maxInflight = 0;

  send(request: DownstreamRequest): Promise<DownstreamAnswer> {
    this.inflight++;
    this.maxInflight = Math.max(this.maxInflight, this.inflight);
    return new Promise((resolve) => {
      const items = JSON.parse(request.body.toString()) as unknown[];
      let answered = false;
      const answer = (value: FakeAnswer) => {
        if (answered) return;
        answered = true;
        this.inflight--;
        resolve({ ...value, durationMs: 1 } as DownstreamAnswer);
      };
      request.signal.addEventListener('abort', () => answer({ ok: false, status: 0, error: Object.assign(new Error('aborted'), { code: 'ABORTED', statusCode: 502 }) }));
      this.calls.push({
        request,
        items,
        answer,
        echo: () => answer({ ok: true, status: 200, results: items.map((item) => ({ echo: item })) }),
      });
    });
  }

  async close(): Promise<void> {}
  async destroy(): Promise<void> {}
}
