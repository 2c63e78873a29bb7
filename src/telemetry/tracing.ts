/**
 * Traces: the OpenTelemetry Node SDK, configured by the standard OTEL_*
 * variables (service name, exporter, endpoint, protocol, sampler), and off —
 * no SDK started, nothing done per request — when no exporter is configured.
 *
 * Sampling: request spans follow the configured sampler (OTEL_TRACES_SAMPLER,
 * default parentbased_always_on, e.g. parentbased_traceidratio with
 * OTEL_TRACES_SAMPLER_ARG=0.01 for 1%; see RequestSampling for how requests
 * without a `traceparent` are drawn). Batch spans (`batch.dispatch`) are
 * always recorded and exported: they are few (one per downstream call) and they
 * are what an operator looks at (ADR 0007).
 */
import { isSpanContextValid, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Link, type Span, type Tracer } from '@opentelemetry/api';
import type { NodeSDK } from '@opentelemetry/sdk-node';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  ParentBasedSampler,
  SamplingDecision,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SamplingResult,
} from '@opentelemetry/sdk-trace';
import type { Attributes, Context, ContextManager, SpanKind as SpanKindType } from '@opentelemetry/api';
import type { Batch, BatchOutcome } from '../actors/batch.ts';

export const BATCH_SPAN = 'batch.dispatch';
export const REQUEST_SPAN = 'POST /process';

type Env = Readonly<Record<string, string | undefined>>;

/** Is an exporter configured? The SDK's own default (otlp to localhost) does not count. */
export function tracingConfigured(env: Env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  const exporters = env.OTEL_TRACES_EXPORTER?.trim();
  if (exporters !== undefined && exporters !== '') return exporters !== 'none';
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

/**
 * How request spans are sampled, from OTEL_TRACES_SAMPLER(_ARG) by the SDK's
 * own rules. A request that carries a valid `traceparent` is left to the
 * configured sampler (the parent-based ones follow the caller's flag). One that
 * does not would be a new trace, and the sampler's root rule is a probability
 * (1, 0, or the ratio): it is drawn here, before any span exists, so the 99 %
 * of requests a 1 % ratio leaves out cost one random number instead of two
 * random IDs, a sampler call and a non-recording span each.
 */
export class RequestSampling {
  /** Decides for requests with a parent. */
  readonly sampler: Sampler;
  /** The share of requests without a parent that get a span. */
  readonly rootRatio: number;

  constructor(sampler: Sampler, rootRatio: number) {
    this.sampler = sampler;
    this.rootRatio = rootRatio;
  }

  static fromEnv(env: Env): RequestSampling {
    const name = env.OTEL_TRACES_SAMPLER?.trim().toLowerCase() || 'parentbased_always_on';
    const arg = Number(env.OTEL_TRACES_SAMPLER_ARG ?? '1');
    const ratio = Number.isFinite(arg) && arg >= 0 && arg <= 1 ? arg : 1;
    switch (name) {
      case 'always_on':
        return new RequestSampling(new AlwaysOnSampler(), 1);
      case 'always_off':
        return new RequestSampling(new AlwaysOffSampler(), 0);
      case 'traceidratio':
        return new RequestSampling(new TraceIdRatioBasedSampler(ratio), ratio);
      case 'parentbased_always_off':
        return new RequestSampling(new ParentBasedSampler({ root: new AlwaysOffSampler() }), 0);
      case 'parentbased_traceidratio':
        return new RequestSampling(new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }), ratio);
      default:
        return new RequestSampling(new ParentBasedSampler({ root: new AlwaysOnSampler() }), 1);
    }
  }

  /** Should a request without a parent get a span? */
  drawRoot(): boolean {
    return Math.random() < this.rootRatio;
  }
}

function hasParent(context: Context): boolean {
  const parent = trace.getSpanContext(context);
  return parent !== undefined && isSpanContextValid(parent);
}

/**
 * The SDK's sampler. Batch spans are always sampled. A request span without a
 * parent is started only once RequestSampling.drawRoot has chosen it, so it is
 * sampled; one with a parent is left to the configured sampler.
 */
export class SidecarSampler implements Sampler {
  private readonly requests: Sampler;
  constructor(requests: Sampler) {
    this.requests = requests;
  }
  shouldSample(
    parent: Context,
    traceId: string,
    name: string,
    kind: SpanKindType,
    attributes: Attributes,
    links: Link[],
  ): SamplingResult {
    if (name === BATCH_SPAN || (name === REQUEST_SPAN && !hasParent(parent))) return { decision: SamplingDecision.RECORD_AND_SAMPLED };
    return this.requests.shouldSample(parent, traceId, name, kind, attributes, links);
  }
  toString(): string {
    return `SidecarSampler{${this.requests.toString()}}`;
  }
}

/**
 * A context manager that tracks nothing: every parent here is explicit (the
 * caller's traceparent, or a new root for a batch), so no "active span" is ever
 * read, and the SDK's default (AsyncLocalStorage) would tax every promise and
 * callback in the process for nothing.
 */
class ExplicitParentsOnly implements ContextManager {
  active(): Context {
    return ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    _context: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return fn.call(thisArg, ...args);
  }
  bind<T>(_context: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    return this;
  }
}

/** Tracing while it is on: the tracer, and the SDK to flush at shutdown. */
export class Tracing {
  readonly tracer: Tracer;
  private readonly sdk: NodeSDK;
  private readonly sampling: RequestSampling;

  private constructor(sdk: NodeSDK, sampling: RequestSampling) {
    this.sdk = sdk;
    this.sampling = sampling;
    this.tracer = trace.getTracer('batching-sidecar');
  }

  /**
   * Starts the SDK when an exporter is configured; null (tracing off) otherwise.
   * The SDK (exporters for three protocols, gRPC, protobuf) is loaded only
   * then: an untraced sidecar starts faster and holds about 60 MiB less.
   */
  static async start(env: Env): Promise<Tracing | null> {
    if (!tracingConfigured(env)) return null;
    const { NodeSDK } = await import('@opentelemetry/sdk-node');
    const sampling = RequestSampling.fromEnv(env);
    const sdk = new NodeSDK({
      sampler: new SidecarSampler(sampling.sampler),
      // No context manager: every parent is passed explicitly (the caller's
      // traceparent, or a new root for batches), so nothing needs an "active"
      // span, and an AsyncLocalStorage would tax every promise and callback in
      // the process.
      contextManager: new ExplicitParentsOnly(),
      instrumentations: [],
      metricReaders: [],
      logRecordProcessors: [],
    });
    sdk.start();
    return new Tracing(sdk, sampling);
  }

  /**
   * Starts a request span as a child of the caller's `traceparent`, if any;
   * null when the request is not sampled.
   */
  startRequestSpan(headers: Readonly<Record<string, unknown>>): Span | null {
    // Most callers send no trace context: skip the propagator for them.
    const parent = headers.traceparent === undefined ? ROOT_CONTEXT : propagation.extract(ROOT_CONTEXT, headers);
    if (!hasParent(parent) && !this.sampling.drawRoot()) return null;
    const span = this.tracer.startSpan(REQUEST_SPAN, { kind: SpanKind.SERVER }, parent);
    return span.isRecording() ? span : null;
  }

  /**
   * Starts the batch's span, linked to the sampled request spans it carries,
   * and returns the `traceparent` headers for the downstream call.
   */
  startBatchSpan(batch: Batch): { span: Span; headers: Record<string, string> } {
    const links: Link[] = [];
    for (const item of batch.items) if (item.traceLink !== null) links.push({ context: item.traceLink });
    // A half of a bisected batch (ADR 0014) links to the span of the batch it was split from.
    const parent = batch.bisectedFrom?.observation as Span | null | undefined;
    if (parent) links.push({ context: parent.spanContext(), attributes: { 'batch.link': 'bisected_from' } });
    const span = this.tracer.startSpan(BATCH_SPAN, {
      kind: SpanKind.CLIENT,
      root: true,
      links,
      attributes: {
        'batch.id': batch.id,
        'batch.size': batch.items.length,
        'batch.shard': batch.shard,
        'batch.trigger': batch.trigger,
        'batch.bytes': batch.bodyBytes,
      },
    });
    if (batch.bisectDepth > 0) span.setAttribute('batch.bisect_depth', batch.bisectDepth);
    const headers: Record<string, string> = {};
    propagation.inject(trace.setSpan(ROOT_CONTEXT, span), headers);
    return { span, headers };
  }

  endBatchSpan(span: Span, outcome: BatchOutcome): void {
    if (outcome.status !== 0) span.setAttribute('http.response.status_code', outcome.status);
    if (outcome.error !== null) {
      span.setAttribute('error.type', outcome.error.code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error.message });
    }
    span.end();
  }

  /** Exports what is buffered and stops the SDK. */
  shutdown(): Promise<void> {
    return this.sdk.shutdown();
  }
}
