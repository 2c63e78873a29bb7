import { ROOT_CONTEXT, SpanKind, trace, TraceFlags, type Context } from '@opentelemetry/api';
import { SamplingDecision } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { RequestSampling, SidecarSampler, tracingConfigured } from '../../src/telemetry/tracing.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';

/** A context holding the caller's span, as the W3C propagator extracts it from a `traceparent`. */
const callerContext = (sampled: boolean): Context =>
  trace.setSpanContext(ROOT_CONTEXT, {
    traceId: TRACE_ID,
    spanId: '00f067aa0ba902b7',
    traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    isRemote: true,
  });

describe('sampling', () => {
  const decide = (env: Record<string, string>, name: string, parent: Context = ROOT_CONTEXT) =>
    new SidecarSampler(RequestSampling.fromEnv(env).sampler).shouldSample(parent, TRACE_ID, name, SpanKind.SERVER, {}, []).decision;

  it('always samples batch spans, whatever the configured sampler', () => {
    for (const sampler of ['always_off', 'parentbased_always_off', 'traceidratio', 'parentbased_traceidratio']) {
      expect(decide({ OTEL_TRACES_SAMPLER: sampler, OTEL_TRACES_SAMPLER_ARG: '0' }, 'batch.dispatch')).toBe(SamplingDecision.RECORD_AND_SAMPLED);
    }
  });

  it('leaves request spans with a parent to the sampler OTEL_TRACES_SAMPLER names', () => {
    const ratioZero = { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' };
    expect(decide(ratioZero, 'POST /process', callerContext(true))).toBe(SamplingDecision.RECORD_AND_SAMPLED);
    expect(decide(ratioZero, 'POST /process', callerContext(false))).toBe(SamplingDecision.NOT_RECORD);
    expect(decide({ OTEL_TRACES_SAMPLER: 'always_off' }, 'POST /process', callerContext(true))).toBe(SamplingDecision.NOT_RECORD);
    expect(decide({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1' }, 'POST /process', callerContext(false))).toBe(
      SamplingDecision.RECORD_AND_SAMPLED,
    );
    expect(decide({}, 'POST /process', callerContext(true))).toBe(SamplingDecision.RECORD_AND_SAMPLED); // parentbased_always_on
  });

  it('draws request spans without a parent at the sampler root probability, before any span exists', () => {
    const rootRatio = (env: Record<string, string>) => RequestSampling.fromEnv(env).rootRatio;
    expect(rootRatio({})).toBe(1); // parentbased_always_on
    expect(rootRatio({ OTEL_TRACES_SAMPLER: 'always_on' })).toBe(1);
    expect(rootRatio({ OTEL_TRACES_SAMPLER: 'always_off' })).toBe(0);
    expect(rootRatio({ OTEL_TRACES_SAMPLER: 'parentbased_always_off' })).toBe(0);
    expect(rootRatio({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' })).toBe(0.25);
    expect(rootRatio({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' })).toBe(0.01);
    expect(rootRatio({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: 'lots' })).toBe(1); // the SDK's fallback

    const onePercent = RequestSampling.fromEnv({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' });
    let drawn = 0;
    for (let i = 0; i < 100_000; i++) if (onePercent.drawRoot()) drawn++;
    expect(drawn).toBeGreaterThan(800); // 1,000 expected; 800..1,200 is more than six standard deviations
    expect(drawn).toBeLessThan(1_200);
    const always = RequestSampling.fromEnv({});
    const never = RequestSampling.fromEnv({ OTEL_TRACES_SAMPLER: 'always_off' });
    for (let i = 0; i < 1_000; i++) {
      expect(always.drawRoot()).toBe(true);
      expect(never.drawRoot()).toBe(false);
    }
    // Once drawn, the SDK's sampler records it.
    expect(decide({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' }, 'POST /process')).toBe(
      SamplingDecision.RECORD_AND_SAMPLED,
    );
  });

  it('is on only when an exporter is configured', () => {
    expect(tracingConfigured({})).toBe(false);
    expect(tracingConfigured({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x:4318' })).toBe(false);
    expect(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x:4318' })).toBe(true);
    expect(tracingConfigured({ OTEL_TRACES_EXPORTER: 'otlp' })).toBe(true);
    expect(tracingConfigured({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'true' })).toBe(false);
  });
});
