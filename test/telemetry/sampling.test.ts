import { ROOT_CONTEXT, SpanKind } from '@opentelemetry/api';
import { SamplingDecision } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { BatchSpansSampled, samplerFromEnv, tracingConfigured } from '../../src/telemetry/tracing.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';

describe('sampling', () => {
  const decide = (env: Record<string, string>, name: string) =>
    new BatchSpansSampled(samplerFromEnv(env)).shouldSample(ROOT_CONTEXT, TRACE_ID, name, SpanKind.SERVER, {}, []).decision;

  it('always samples batch spans, whatever the configured sampler', () => {
    for (const sampler of ['always_off', 'parentbased_always_off', 'traceidratio', 'parentbased_traceidratio']) {
      expect(decide({ OTEL_TRACES_SAMPLER: sampler, OTEL_TRACES_SAMPLER_ARG: '0' }, 'batch.dispatch')).toBe(SamplingDecision.RECORD_AND_SAMPLED);
    }
  });

  it('leaves request spans to the sampler OTEL_TRACES_SAMPLER names', () => {
    expect(decide({ OTEL_TRACES_SAMPLER: 'always_off' }, 'POST /process')).toBe(SamplingDecision.NOT_RECORD);
    expect(decide({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' }, 'POST /process')).toBe(
      SamplingDecision.NOT_RECORD,
    );
    expect(decide({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1' }, 'POST /process')).toBe(
      SamplingDecision.RECORD_AND_SAMPLED,
    );
    expect(decide({}, 'POST /process')).toBe(SamplingDecision.RECORD_AND_SAMPLED); // parentbased_always_on
  });

  it('is on only when an exporter is configured', () => {
    expect(tracingConfigured({})).toBe(false);
    expect(tracingConfigured({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x:4318' })).toBe(false);
    expect(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x:4318' })).toBe(true);
    expect(tracingConfigured({ OTEL_TRACES_EXPORTER: 'otlp' })).toBe(true);
    expect(tracingConfigured({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'true' })).toBe(false);
  });
});
